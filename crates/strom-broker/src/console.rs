//! A small web console on the HTTP listener, rendered on the server as plain HTML
//! (nothing fetched from elsewhere; the only scripts are one inline `confirm()` before
//! deleting a topic and the throughput chart, `assets/chart.js`, built into the binary):
//! `/` lists the topics, the broker and the consumer groups with their lag;
//! `/topics/{topic}` shows a topic's partitions, configs and a live throughput chart (fed
//! by `/topics/{topic}/rates`); `/topics/{topic}/{partition}?offset=N|timestamp=MS&key=TEXT&format=text|json|hex`
//! browses the records of a hosted partition (from an offset, or from the first record at
//! or after a timestamp as ListOffsets finds it; optionally only records whose key contains
//! TEXT; keys and values in Confluent's wire format decoded through the schema registry);
//! `/clients` shows what clients push (KIP-714); `/schemas` is `console_schemas.rs`. The
//! forms that change things (create and delete topics, add partitions, set configs,
//! produce a test message, reset a group's offsets) post to `console_actions.rs`, which
//! runs them as Kafka requests of the request's principal. Pages that read a topic check
//! the principal's ACLs as the Kafka API would (Describe for the topic page and the home
//! page's list, Read for the browser).
//!
//! Bounded: a page of at most [`RECORDS_PER_PAGE`] records read from at most
//! [`READ_BYTES_MAX`] of log (plus the one batch a read always returns, at most
//! `max.message.bytes`), each batch decompressed into at most [`DECOMPRESSED_BYTES_MAX`],
//! each key and value shown up to [`SHOWN_BYTES_MAX`]; a search by key reads at most
//! [`SEARCH_BYTES_MAX`] of log per page. Reads run on the blocking pool and
//! only up to the high watermark (what consumers may see). Every page is built from the
//! same sources as the Kafka handlers (the metadata image, the hosted logs, the group
//! coordinator), never from a cache of its own.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use strom_meta::acl::ResourceType;
use strom_protocol::messages::ApiKey;

use crate::http::HttpShared;
use crate::server::BrokerContext;

/// Records shown on one page of the browser.
pub const RECORDS_PER_PAGE: usize = 50;
/// Log bytes read for one page.
pub const READ_BYTES_MAX: u64 = 1024 * 1024;
/// The most one batch decompresses into for the browser.
pub const DECOMPRESSED_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of a key or value shown.
pub const SHOWN_BYTES_MAX: usize = 1024;
/// Log bytes a search by key reads at most (then it offers to go on from where it stopped).
pub const SEARCH_BYTES_MAX: u64 = 16 * 1024 * 1024;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.n{text-align:right}code,pre{font-family:monospace}\
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:60em}\
.schema{font-size:.8em;color:#555}.error{color:#a00}#principal{color:#555}\
textarea{font-family:monospace;width:60em;max-width:95%}";

pub(crate) fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{} - Strom</title>\
         <style>{STYLE}</style></head><body><p><a href=\"/\">Strom</a> · \
         <a href=\"/schemas\">schemas</a> · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/health/ready\">readiness</a> · <span id=principal>{}</span></p>\
         <h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(&crate::http_auth::current_identity().principal.to_string()),
        escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// A 403 page: the principal may not do what the page needs (Kafka's error named).
fn refused(what: &str) -> Response {
    let mut response = page(
        "Not authorized",
        &format!("<p id=outcome>{}</p>", escape(what)),
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// Whether the request's principal may do what `api` needs on topic `name` (always true
/// without an authorizer); a denial is audited like a client's.
fn topic_allowed(context: &BrokerContext, api: ApiKey, name: &str) -> bool {
    match crate::http_auth::current_session(context) {
        Some(session) => crate::authz::allowed(context, &session, api, ResourceType::Topic, name),
        None => !crate::authz::enabled(context),
    }
}

fn topic_refused(context: &BrokerContext, what: &str, name: &str) -> Response {
    let principal = crate::http_auth::current_session(context)
        .map_or_else(|| "User:ANONYMOUS".to_string(), |s| s.principal.to_string());
    refused(&format!(
        "TOPIC_AUTHORIZATION_FAILED: {principal} may not {what} topic {name}."
    ))
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
pub(crate) fn segment(text: &str) -> String {
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
    // Only the topics the principal may describe, as Metadata lists them.
    let session = crate::http_auth::current_session(&context);
    let mut topics: Vec<_> = image
        .topics()
        .filter(|t| {
            session
                .as_ref()
                .map_or(!crate::authz::enabled(&context), |s| {
                    crate::authz::visible(
                        &context,
                        s,
                        ApiKey::Metadata,
                        ResourceType::Topic,
                        &t.name,
                    )
                })
        })
        .collect();
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
    let _ = write!(
        body,
        "<form method=post action=\"/topics\" id=create-topic>{}Create topic \
         <input name=name placeholder=name required> partitions \
         <input name=partitions size=4 placeholder=default> replication factor \
         <input name=replication_factor size=3 placeholder=default> \
         <button>Create</button></form>",
        crate::console_actions::csrf_field()
    );
    body.push_str(&groups_section(&context).await);
    let instances = context.metrics.clients.instances();
    let pushing = instances.iter().filter(|i| i.pushes > 0).count();
    let _ = write!(
        body,
        "<h2>Client metrics</h2><p><a href=\"/clients\">{} client instance(s)</a> asked for \
         a telemetry subscription (KIP-714); {pushing} pushed metrics.</p>",
        instances.len()
    );
    page("Cluster", &body)
}

/// `/clients`: the client instances that pushed metrics (KIP-714), with their subscription
/// and the latest value of every series they pushed (at most
/// `telemetry::SERIES_PER_INSTANCE_MAX` each).
pub async fn clients(State(context): State<Arc<BrokerContext>>) -> Response {
    let instances = context.metrics.clients.instances();
    let mut body = String::new();
    if instances.is_empty() {
        body.push_str(
            "<p>No client has pushed metrics. Clients push only what a client-metrics \
             subscription asks for: <code>kafka-client-metrics.sh --alter --name all \
             --metrics '*' --interval 60000</code> (or IncrementalAlterConfigs on a \
             CLIENT_METRICS resource).</p>",
        );
    }
    for i in instances {
        let subscribed = if i.subscription.metrics.iter().any(String::is_empty) {
            "every metric".to_string()
        } else if i.subscription.metrics.is_empty() {
            "nothing".to_string()
        } else {
            i.subscription.metrics.join(", ")
        };
        let _ = write!(
            body,
            "<h2>{} <small><code>{}</code></small></h2><p>From {}; subscribed to {} every {} ms; \
             {} push(es){}; last error code {}.</p><table><tr><th>metric</th><th>attributes</th>\
             <th>value</th></tr>",
            escape(&i.client_id),
            crate::telemetry::kafka_uuid(i.id),
            i.source,
            escape(&subscribed),
            i.subscription.interval_ms,
            i.pushes,
            i.last_push_ago
                .map(|ago| format!(", the last {:.1} s ago", ago.as_secs_f64()))
                .unwrap_or_default(),
            i.last_error,
        );
        for (name, attrs, value) in &i.series {
            let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=n>{value}</td></tr>",
                escape(name),
                escape(&attrs.join(", ")),
            );
        }
        body.push_str("</table>");
    }
    page("Client metrics", &body)
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
    for (group, _) in &offsets {
        let _ = write!(
            out,
            "<form method=post action=\"/groups/{}/reset\" class=reset-offsets>{}Reset \
             <b>{}</b> (members must have left) on topic <input name=topic required> to \
             <select name=to><option>earliest</option><option>latest</option>\
             <option>offset</option></select> <input name=offset size=8 placeholder=offset> \
             <button>Reset offsets</button></form>",
            segment(group),
            crate::console_actions::csrf_field(),
            escape(group),
        );
    }
    out
}

/// `/topics/{topic}`: partitions (leader, replicas, ISR, offsets, size) and configs.
pub async fn topic(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
) -> Response {
    let image = context.metadata.image();
    if !topic_allowed(&context, ApiKey::Metadata, &name) {
        return topic_refused(&context, "describe", &name);
    }
    let Some(topic) = image.topic_by_name(&name) else {
        return not_found(&format!("No topic {name}."));
    };
    let mut body = format!("<p>Topic id <code>{}</code>.</p>", topic.topic_id);
    let _ = write!(
        body,
        "<h2>Throughput (this broker)</h2><canvas id=throughput width=760 height=220 \
         data-rates=\"/topics/{}/rates\"></canvas><p id=throughput-now>waiting for two \
         samples…</p><script src=\"/chart.js\"></script>",
        segment(&name)
    );
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
    let base = format!("/topics/{}", segment(&name));
    let csrf = crate::console_actions::csrf_field();
    let _ = write!(
        body,
        "<h2>Change</h2>\
         <form method=post action=\"{base}/configs\" id=set-config>{csrf}Set config \
         <input name=key placeholder=key required> = \
         <input name=value placeholder=\"value (empty: default)\"> <button>Set</button></form>\
         <form method=post action=\"{base}/partitions\" id=add-partitions>{csrf}Increase to \
         <input name=total size=4 required> partitions <button>Add partitions</button></form>\
         <form method=post action=\"{base}/produce\" id=produce>{csrf}Produce to partition \
         <input name=partition size=3 value=0> key <input name=key> value \
         <input name=value size=40> <button>Produce</button></form>\
         <form method=post action=\"{base}/delete\" id=delete-topic \
         onsubmit=\"return confirm('Delete topic {}?')\">{csrf}<button>Delete topic</button></form>",
        escape(&name),
    );
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
    Extension(shared): Extension<Arc<HttpShared>>,
    Path((name, index)): Path<(String, i32)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    // Reading records is what Fetch needs: READ on the topic.
    if !topic_allowed(&context, ApiKey::Fetch, &name) {
        return topic_refused(&context, "read", &name);
    }
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
    let format = match query.get("format").map(String::as_str) {
        Some("hex") => Format::Hex,
        Some("json") => Format::Json,
        _ => Format::Text,
    };
    let start = partition.log.log_start_offset();
    let hw = partition.log.high_watermark();
    let page_records = RECORDS_PER_PAGE as i64;
    let key = query
        .get("key")
        .filter(|k| !k.is_empty())
        .map(|k| k.as_bytes().to_vec());
    // A timestamp is looked up with ListOffsets, as a client's offsetsForTimes.
    let by_time = match query
        .get("timestamp")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(ts) => {
                match crate::console_actions::list_offsets(&context, &name, &[index], ts).await {
                    // No record at or after it: the high watermark.
                    Ok(found) => found.first().map(|(_, o)| if *o < 0 { hw } else { *o }),
                    Err(error) => {
                        return page(
                            &format!("{name}-{index}"),
                            &format!("<p>Cannot look up the timestamp: {}</p>", escape(&error)),
                        )
                    }
                }
            }
            Err(_) => return not_found("timestamp: expected milliseconds since the epoch"),
        },
    };
    let default_from = if key.is_some() {
        start
    } else {
        hw - page_records
    };
    let from = by_time
        .or_else(|| {
            query
                .get("offset")
                .and_then(|o| o.trim().parse::<i64>().ok())
        })
        .unwrap_or(default_from)
        .clamp(start, hw.max(start));
    let reading = Arc::clone(&partition);
    let searching = key.clone();
    let read =
        tokio::task::spawn_blocking(move || read_records(&reading, from, hw, searching.as_deref()))
            .await;
    let (records, scanned_to) = match read {
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
    let format_arg = format.arg();
    let key_text = key
        .as_deref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let key_arg = if key_text.is_empty() {
        String::new()
    } else {
        format!("&key={}", query_value(&key_text))
    };
    let mut body = format!(
        "<p>Offsets {start} (log start) to {hw} (high watermark). Showing from {from}. \
         <a href=\"{base}?offset={}{format_arg}\">previous</a> · \
         <a href=\"{base}?offset={scanned_to}{format_arg}{key_arg}\">next</a> · \
         <a href=\"{base}?offset={start}{format_arg}\">first</a> · \
         show as <a href=\"{base}?offset={from}{key_arg}\">text</a> / \
         <a href=\"{base}?offset={from}&format=json{key_arg}\">JSON</a> / \
         <a href=\"{base}?offset={from}&format=hex{key_arg}\">hex</a></p>\
         <form method=get action=\"{base}\" id=browse>from offset <input name=offset size=8> \
         or timestamp (ms) <input name=timestamp size=14> key contains \
         <input name=key value=\"{}\"> <select name=format><option>text</option>\
         <option>json</option><option>hex</option></select> <button>Show</button></form>",
        (from - page_records).max(start),
        escape(&key_text),
    );
    if !key_text.is_empty() {
        let _ = write!(
            body,
            "<p>Records whose key contains <code>{}</code>, searched from offset {from} to \
             {scanned_to} (at most {} MiB of log per page).</p>",
            escape(&key_text),
            SEARCH_BYTES_MAX / (1024 * 1024)
        );
    }
    body.push_str(
        "<table><tr><th>offset</th><th>timestamp (ms)</th><th>key</th><th>value</th>\
         <th>headers</th></tr>",
    );
    // Keys and values in Confluent's wire format are decoded through the registry (unless
    // hex is asked for).
    let decoder = shared.registry().filter(|_| format != Format::Hex);
    if decoder.is_none() && format != Format::Hex {
        let framed = records.iter().any(|r| {
            [r.key.as_deref(), r.value.as_deref()]
                .iter()
                .flatten()
                .any(|b| strom_registry::decode::framed(b).is_some())
        });
        if framed {
            body.push_str(
                "<p class=schema>Some records look like Confluent's wire format (magic byte \
                 0, schema id): set schema.registry.enable=true or \
                 strom.console.schema.registry.url to see them decoded.</p>",
            );
        }
    }
    for record in &records {
        let key = shown_cell(decoder.as_deref(), record.key.as_deref(), format).await;
        let value = shown_cell(decoder.as_deref(), record.value.as_deref(), format).await;
        let _ = write!(
            body,
            "<tr><td class=n>{}</td><td class=n>{}</td><td>{key}</td><td>{value}</td>\
             <td class=n>{}</td></tr>",
            record.offset, record.timestamp_ms, record.headers,
        );
    }
    body.push_str("</table>");
    if records.is_empty() {
        body.push_str("<p>No records at these offsets.</p>");
    }
    page(&format!("{name} partition {index}"), &body)
}

/// A key or value cell: decoded through the registry (labelled with its schema) when it is
/// in Confluent's wire format and a registry is configured, else [`show`]n as asked.
async fn shown_cell(
    decoder: Option<&strom_registry::decode::Decoder>,
    bytes: Option<&[u8]>,
    format: Format,
) -> String {
    let decoded = match (decoder, bytes) {
        (Some(decoder), Some(bytes)) => decoder.decode(bytes).await,
        _ => None,
    };
    let Some(decoded) = decoded else {
        return format!("<pre>{}</pre>", show(bytes, format));
    };
    let kind = decoded.schema_type.map_or("unknown type", |t| t.name());
    let mut label = format!("{kind} · schema id {}", decoded.schema_id);
    if let Some((subject, version)) = &decoded.subject {
        let _ = write!(
            label,
            " · <a href=\"/schemas/{}\">{}</a> v{version}",
            segment(subject),
            escape(subject)
        );
    }
    if let Some(message) = &decoded.message {
        let _ = write!(label, " · {}", escape(message));
    }
    match decoded.shown {
        Ok(text) => {
            let cut = text.len().min(SHOWN_BYTES_MAX * 4);
            let cut = (0..=cut)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            format!(
                "<div class=schema>{label}</div><pre class=decoded>{}</pre>",
                escape(&text[..cut])
            )
        }
        Err(error) => format!(
            "<div class=schema>{label}</div><div class=error>cannot decode: {}</div><pre>{}</pre>",
            escape(&error),
            show(bytes, Format::Hex)
        ),
    }
}

/// `/topics/{topic}/rates`: this broker's traffic counters of the topic (the series
/// `/metrics` exposes as `kafka_server_brokertopicmetrics_*`), for the console's chart,
/// which turns two samples into per-second rates.
pub async fn rates(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
) -> Response {
    if !topic_allowed(&context, ApiKey::Metadata, &name) {
        return topic_refused(&context, "describe", &name);
    }
    if context.metadata.image().topic_by_name(&name).is_none() {
        return not_found(&format!("No topic {name}."));
    }
    let counters = context.metrics.topic(&name);
    let body = serde_json::json!({
        "topic": name,
        "time_ms": crate::metadata::now_ms(),
        "bytes_in": counters.bytes_in.get(),
        "records_in": counters.messages_in.get(),
        "bytes_out": counters.bytes_out.get(),
        "records_out": counters.messages_out.get(),
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The chart's script, built into the binary (no CDN).
pub const CHART_JS: &str = include_str!("../assets/chart.js");

/// `/chart.js`.
pub async fn chart_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CHART_JS,
    )
        .into_response()
}

/// Up to a page of records from `from`, below the high watermark `hw`, and the offset to
/// go on from. With `key`, only records whose key contains it, read through at most
/// [`SEARCH_BYTES_MAX`] of log; without, one read of [`READ_BYTES_MAX`].
fn read_records(
    partition: &crate::Partition,
    from: i64,
    hw: i64,
    key: Option<&[u8]>,
) -> Result<(Vec<Shown>, i64), String> {
    let mut out = Vec::new();
    let budget = if key.is_some() {
        SEARCH_BYTES_MAX
    } else {
        READ_BYTES_MAX
    };
    let limits = strom_records::DecodeLimits {
        decompressed_bytes_max: DECOMPRESSED_BYTES_MAX,
    };
    let mut next = from;
    let mut read_bytes = 0u64;
    while next < hw && read_bytes < budget {
        let read = partition
            .log
            .read(next, READ_BYTES_MAX, hw)
            .map_err(|e| e.to_string())?;
        let Some(range) = read.range else {
            break;
        };
        let bytes = range.read_bytes().map_err(|e| e.to_string())?;
        read_bytes = read_bytes.saturating_add(bytes.len() as u64);
        let before = next;
        for frame in strom_records::batch_frames(&bytes) {
            let (header, span) = frame.map_err(|e| e.to_string())?;
            let batch_end = header.base_offset + i64::from(header.last_offset_delta) + 1;
            if header.is_control() {
                next = next.max(batch_end.min(hw));
                continue;
            }
            let batch = bytes.get(span).ok_or("a batch runs past the bytes read")?;
            let records = strom_records::records(batch, &limits).map_err(|e| e.to_string())?;
            for record in records {
                let offset = header.base_offset + i64::from(record.offset_delta);
                if offset < next || offset >= hw {
                    continue;
                }
                next = offset + 1;
                let matches = key.is_none_or(|wanted| {
                    record.key.as_deref().is_some_and(|k| contains(k, wanted))
                });
                if !matches {
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
                    return Ok((out, next));
                }
            }
            next = next.max(batch_end.min(hw));
        }
        if key.is_none() || next == before {
            break;
        }
    }
    Ok((out, next))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Percent-encodes a query value.
fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// How keys and values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// UTF-8 text (hex when not UTF-8).
    Text,
    /// Pretty-printed when the bytes are JSON, else as text.
    Json,
    Hex,
}

impl Format {
    fn arg(self) -> &'static str {
        match self {
            Format::Text => "",
            Format::Json => "&format=json",
            Format::Hex => "&format=hex",
        }
    }
}

/// Bytes as escaped text (when UTF-8), pretty JSON (when asked and valid) or hex, cut at
/// [`SHOWN_BYTES_MAX`].
fn show(bytes: Option<&[u8]>, format: Format) -> String {
    let Some(bytes) = bytes else {
        return "<i>null</i>".to_string();
    };
    if format == Format::Json {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
            let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
            let cut = pretty.len().min(SHOWN_BYTES_MAX * 4);
            let cut = (0..=cut)
                .rev()
                .find(|i| pretty.is_char_boundary(*i))
                .unwrap_or(0);
            return escape(&pretty[..cut]);
        }
    }
    let hex = format == Format::Hex;
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
        assert_eq!(show(None, Format::Text), "<i>null</i>");
        assert_eq!(show(Some(b"<b>"), Format::Text), "&lt;b&gt;");
        assert_eq!(show(Some(b"<b>"), Format::Hex), "3c 62 3e");
        assert_eq!(show(Some(&[0xff, 0x00]), Format::Text), "ff 00");
        assert_eq!(
            show(Some(br#"{"a":[1,"<"]}"#), Format::Json),
            "{\n  &quot;a&quot;: [\n    1,\n    &quot;&lt;&quot;\n  ]\n}"
        );
        assert_eq!(show(Some(b"not json"), Format::Json), "not json");
        let long = vec![b'x'; SHOWN_BYTES_MAX + 5];
        assert!(show(Some(&long), Format::Text).ends_with(&format!(" … ({} bytes)", long.len())));
        assert!(contains(b"order-17", b"der-1") && !contains(b"order", b"x"));
        assert_eq!(query_value("a b&c"), "a%20b%26c");
    }
}
