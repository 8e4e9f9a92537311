//! A small read-only web console on the HTTP listener, rendered on the server as plain HTML
//! (no JavaScript, no assets, nothing fetched from elsewhere): `/` lists the topics, the
//! broker and the consumer groups with their lag; `/topics/{topic}` shows a topic's
//! partitions and configs; `/topics/{topic}/{partition}?offset=N&format=text|hex` browses
//! the records of a hosted partition.
//!
//! Bounded: a page of at most [`RECORDS_PER_PAGE`] records read from at most
//! [`READ_BYTES_MAX`] of log (plus the one batch a read always returns, at most
//! `max.message.bytes`), each batch decompressed into at most [`DECOMPRESSED_BYTES_MAX`],
//! each key and value shown up to [`SHOWN_BYTES_MAX`]. Reads run on the blocking pool and
//! only up to the high watermark (what consumers may see). Every page is built from the
//! same sources as the Kafka handlers (the metadata image, the hosted logs, the group
//! coordinator), never from a cache of its own.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::server::BrokerContext;

/// Records shown on one page of the browser.
pub const RECORDS_PER_PAGE: usize = 50;
/// Log bytes read for one page.
pub const READ_BYTES_MAX: u64 = 1024 * 1024;
/// The most one batch decompresses into for the browser.
pub const DECOMPRESSED_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of a key or value shown.
pub const SHOWN_BYTES_MAX: usize = 1024;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.n{text-align:right}code,pre{font-family:monospace}\
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:60em}";

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{} - Strom</title>\
         <style>{STYLE}</style></head><body><p><a href=\"/\">Strom</a> · \
         <a href=\"/metrics\">metrics</a> · <a href=\"/health/ready\">readiness</a></p>\
         <h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn not_found(what: &str) -> Response {
    let mut response = page("Not found", &format!("<p>{}</p>", escape(what)));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (topic names may hold `.`, `_`, `-` only, but be safe).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `/`: the broker, the topics, the consumer groups with their lag.
pub async fn home(State(context): State<Arc<BrokerContext>>) -> Response {
    let image = context.metadata.image();
    let mut body = String::new();
    body.push_str(
        "<h2>Brokers</h2><table><tr><th>id</th><th>endpoints</th><th>rack</th><th>status</th></tr>",
    );
    for broker in image.brokers() {
        let endpoints: Vec<String> = broker
            .endpoints
            .iter()
            .map(|e| format!("{}://{}:{}", e.listener_name, e.host, e.port))
            .collect();
        let status = if broker.fenced {
            "fenced"
        } else if broker.in_controlled_shutdown {
            "shutting down"
        } else {
            "active"
        };
        let _ = write!(
            body,
            "<tr><td class=n>{}</td><td>{}</td><td>{}</td><td>{status}</td></tr>",
            broker.broker_id,
            escape(&endpoints.join(", ")),
            escape(broker.rack.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</table>");
    if let Some(status) = context.metadata.quorum_status() {
        let _ = write!(
            body,
            "<p>Metadata quorum: leader {}, term {}, voters {:?}.</p>",
            status
                .leader_id
                .map_or_else(|| "unknown".to_string(), |l| l.to_string()),
            status.term,
            status.voters
        );
    }
    let sizes: BTreeMap<String, (u64, i64)> =
        context
            .replicas
            .all()
            .iter()
            .fold(BTreeMap::new(), |mut sizes, p| {
                let entry = sizes.entry(p.topic.clone()).or_insert((0, 0));
                entry.0 = entry.0.saturating_add(p.log.size_bytes());
                entry.1 = entry
                    .1
                    .saturating_add(p.log.high_watermark() - p.log.log_start_offset());
                sizes
            });
    body.push_str(
        "<h2>Topics</h2><table><tr><th>topic</th><th>partitions</th><th>replicas</th>\
         <th>records (hosted here)</th><th>bytes (hosted here)</th></tr>",
    );
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for topic in topics {
        let (bytes, records) = sizes.get(&topic.name).copied().unwrap_or((0, 0));
        let _ = write!(
            body,
            "<tr><td><a href=\"/topics/{}\">{}</a></td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{records}</td><td class=n>{bytes}</td></tr>",
            segment(&topic.name),
            escape(&topic.name),
            topic.partitions.len(),
            topic.replication_factor(),
        );
    }
    body.push_str("</table>");
    body.push_str(&groups_section(&context).await);
    page("Cluster", &body)
}

async fn groups_section(context: &BrokerContext) -> String {
    let wait = crate::metrics::GROUPS_WAIT;
    let Ok((states, offsets)) =
        tokio::time::timeout(wait, crate::metrics::group_offsets(context)).await
    else {
        return "<h2>Consumer groups</h2><p>The group coordinators did not answer in time.</p>"
            .to_string();
    };
    let hosted: BTreeMap<(String, i32), i64> = context
        .replicas
        .all()
        .iter()
        .map(|p| ((p.topic.clone(), p.tp.partition), p.log.high_watermark()))
        .collect();
    let mut out = String::from("<h2>Consumer groups</h2>");
    if states.is_empty() {
        out.push_str("<p>No group is coordinated by this broker.</p>");
        return out;
    }
    let summary: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let _ = write!(out, "<p>{}</p>", escape(&summary.join(", ")));
    out.push_str(
        "<table><tr><th>group</th><th>topic</th><th>partition</th><th>committed offset</th>\
         <th>high watermark</th><th>lag</th></tr>",
    );
    for (group, partitions) in &offsets {
        for (topic, partition, offset) in partitions {
            let hw = hosted.get(&(topic.clone(), *partition));
            let (hw_text, lag_text) = match hw {
                Some(hw) => (hw.to_string(), (hw - offset).max(0).to_string()),
                None => ("not hosted here".to_string(), String::new()),
            };
            let _ = write!(
                out,
                "<tr><td>{}</td><td><a href=\"/topics/{}\">{}</a></td><td class=n>{partition}</td>\
                 <td class=n>{offset}</td><td class=n>{hw_text}</td><td class=n>{lag_text}</td></tr>",
                escape(group),
                segment(topic),
                escape(topic),
            );
        }
    }
    out.push_str("</table>");
    out
}

/// `/topics/{topic}`: partitions (leader, replicas, ISR, offsets, size) and configs.
pub async fn topic(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
) -> Response {
    let image = context.metadata.image();
    let Some(topic) = image.topic_by_name(&name) else {
        return not_found(&format!("No topic {name}."));
    };
    let mut body = format!("<p>Topic id <code>{}</code>.</p>", topic.topic_id);
    body.push_str(
        "<table><tr><th>partition</th><th>leader</th><th>replicas</th><th>ISR</th>\
         <th>log start</th><th>high watermark</th><th>log end</th><th>bytes</th>\
         <th>segments</th><th></th></tr>",
    );
    for (index, partition) in &topic.partitions {
        let tp = strom_meta::TopicIdPartition {
            topic_id: topic.topic_id,
            partition: *index,
        };
        let local = context.replicas.get(tp);
        let cells = match &local {
            Some(p) => format!(
                "<td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
                 <td class=n>{}</td><td><a href=\"/topics/{}/{index}\">browse</a></td>",
                p.log.log_start_offset(),
                p.log.high_watermark(),
                p.log.log_end_offset(),
                p.log.size_bytes(),
                p.log.segment_count(),
                segment(&name),
            ),
            None if context.replicas.is_offline(tp) => {
                "<td colspan=6>offline on this broker</td>".to_string()
            }
            None => "<td colspan=6>not hosted on this broker</td>".to_string(),
        };
        let _ = write!(
            body,
            "<tr><td class=n>{index}</td><td class=n>{}</td><td>{:?}</td><td>{:?}</td>{cells}</tr>",
            partition.leader, partition.replicas, partition.isr,
        );
    }
    body.push_str("</table><h2>Configs set on the topic</h2>");
    match image.topic_configs(&name) {
        Some(configs) if !configs.is_empty() => {
            body.push_str("<table><tr><th>key</th><th>value</th></tr>");
            for (key, value) in configs {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(key),
                    escape(value)
                );
            }
            body.push_str("</table>");
        }
        _ => body.push_str("<p>None: every key has its broker default.</p>"),
    }
    page(&format!("Topic {name}"), &body)
}

/// One record as shown.
struct Shown {
    offset: i64,
    timestamp_ms: i64,
    key: Option<bytes::Bytes>,
    value: Option<bytes::Bytes>,
    headers: usize,
}

/// `/topics/{topic}/{partition}`: a page of records from `offset` (default: the last page).
pub async fn browse(
    State(context): State<Arc<BrokerContext>>,
    Path((name, index)): Path<(String, i32)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let image = context.metadata.image();
    let Some(topic_id) = image.topic_id(&name) else {
        return not_found(&format!("No topic {name}."));
    };
    let tp = strom_meta::TopicIdPartition {
        topic_id,
        partition: index,
    };
    let Some(partition) = context.replicas.get(tp) else {
        return not_found(&format!(
            "Partition {index} of {name} is not hosted on this broker."
        ));
    };
    let hex = query.get("format").map(String::as_str) == Some("hex");
    let start = partition.log.log_start_offset();
    let hw = partition.log.high_watermark();
    let page_records = RECORDS_PER_PAGE as i64;
    let from = query
        .get("offset")
        .and_then(|o| o.trim().parse::<i64>().ok())
        .unwrap_or(hw - page_records)
        .clamp(start, hw.max(start));
    let reading = Arc::clone(&partition);
    let read = tokio::task::spawn_blocking(move || read_records(&reading, from, hw)).await;
    let records = match read {
        Ok(Ok(records)) => records,
        Ok(Err(error)) => {
            return page(
                &format!("{name}-{index}"),
                &format!("<p>Cannot read: {}</p>", escape(&error)),
            )
        }
        Err(_) => return page(&format!("{name}-{index}"), "<p>The read failed.</p>"),
    };
    let base = format!("/topics/{}/{index}", segment(&name));
    let format_arg = if hex { "&format=hex" } else { "" };
    let mut body = format!(
        "<p>Offsets {start} (log start) to {hw} (high watermark). Showing from {from}. \
         <a href=\"{base}?offset={}{format_arg}\">previous</a> · \
         <a href=\"{base}?offset={}{format_arg}\">next</a> · \
         <a href=\"{base}?offset={start}{format_arg}\">first</a> · \
         show as <a href=\"{base}?offset={from}\">text</a> / \
         <a href=\"{base}?offset={from}&format=hex\">hex</a></p>",
        (from - page_records).max(start),
        records.last().map_or(from, |r| r.offset + 1),
    );
    body.push_str(
        "<table><tr><th>offset</th><th>timestamp (ms)</th><th>key</th><th>value</th>\
         <th>headers</th></tr>",
    );
    for record in &records {
        let _ = write!(
            body,
            "<tr><td class=n>{}</td><td class=n>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td>\
             <td class=n>{}</td></tr>",
            record.offset,
            record.timestamp_ms,
            show(record.key.as_deref(), hex),
            show(record.value.as_deref(), hex),
            record.headers,
        );
    }
    body.push_str("</table>");
    if records.is_empty() {
        body.push_str("<p>No records at these offsets.</p>");
    }
    page(&format!("{name} partition {index}"), &body)
}

/// Up to a page of records from `from`, below the high watermark `hw`.
fn read_records(partition: &crate::Partition, from: i64, hw: i64) -> Result<Vec<Shown>, String> {
    let mut out = Vec::new();
    if from >= hw {
        return Ok(out);
    }
    let read = partition
        .log
        .read(from, READ_BYTES_MAX, hw)
        .map_err(|e| e.to_string())?;
    let Some(range) = read.range else {
        return Ok(out);
    };
    let bytes = range.read_bytes().map_err(|e| e.to_string())?;
    let limits = strom_records::DecodeLimits {
        decompressed_bytes_max: DECOMPRESSED_BYTES_MAX,
    };
    for frame in strom_records::batch_frames(&bytes) {
        let (header, span) = frame.map_err(|e| e.to_string())?;
        if header.is_control() {
            continue;
        }
        let batch = bytes.get(span).ok_or("a batch runs past the bytes read")?;
        let records = strom_records::records(batch, &limits).map_err(|e| e.to_string())?;
        for record in records {
            let offset = header.base_offset + i64::from(record.offset_delta);
            if offset < from || offset >= hw {
                continue;
            }
            out.push(Shown {
                offset,
                timestamp_ms: header.base_timestamp + record.timestamp_delta,
                key: record.key,
                value: record.value,
                headers: record.headers.len(),
            });
            if out.len() >= RECORDS_PER_PAGE {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Bytes as escaped text (when UTF-8) or hex, cut at [`SHOWN_BYTES_MAX`].
fn show(bytes: Option<&[u8]>, hex: bool) -> String {
    let Some(bytes) = bytes else {
        return "<i>null</i>".to_string();
    };
    let cut = &bytes[..bytes.len().min(SHOWN_BYTES_MAX)];
    let more = if bytes.len() > cut.len() {
        format!(" … ({} bytes)", bytes.len())
    } else {
        String::new()
    };
    match std::str::from_utf8(cut) {
        Ok(text) if !hex => format!("{}{more}", escape(text)),
        _ => {
            let mut out = String::with_capacity(cut.len() * 3);
            for (i, b) in cut.iter().enumerate() {
                if i > 0 {
                    out.push(if i % 16 == 0 { '\n' } else { ' ' });
                }
                let _ = write!(out, "{b:02x}");
            }
            format!("{out}{more}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_showing() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(segment("a b/c.d"), "a%20b%2Fc.d");
        assert_eq!(show(None, false), "<i>null</i>");
        assert_eq!(show(Some(b"<b>"), false), "&lt;b&gt;");
        assert_eq!(show(Some(b"<b>"), true), "3c 62 3e");
        assert_eq!(show(Some(&[0xff, 0x00]), false), "ff 00");
        let long = vec![b'x'; SHOWN_BYTES_MAX + 5];
        assert!(show(Some(&long), false).ends_with(&format!(" … ({} bytes)", long.len())));
    }
}
