//! The console's write actions: create and delete topics, add partitions, set or delete a
//! topic config, produce a test message, reset a consumer group's offsets.
//!
//! **Same code path as Kafka clients.** Each action builds the Kafka request a client would
//! send (CreateTopics, DeleteTopics, CreatePartitions, IncrementalAlterConfigs, Produce,
//! ListOffsets, OffsetCommit) and runs it through [`crate::handlers::handle`], the function
//! every Kafka connection calls; the answer's error code and message are shown as they are.
//!
//! **CSRF.** Actions are POSTs of `application/x-www-form-urlencoded` forms (nothing changes
//! on GET). Each form carries a token drawn at random when the process starts and embedded
//! only in the console's own pages, which another site cannot read (same-origin policy);
//! a POST without the token is refused with 403. A POST whose `Origin` header names another
//! origin than the `Host` it was sent to, or whose `Sec-Fetch-Site` says `cross-site` or
//! `same-site`, is refused too, token or not. Bodies are bounded by [`FORM_BYTES_MAX`].
//! Each action runs as the HTTP request's principal (`http_auth.rs`), so ACLs decide it.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use bytes::Bytes;
use strom_protocol::messages::{
    create_partitions_request, create_topics_request, incremental_alter_configs_request,
    list_offsets_request, offset_commit_request, produce_request, ApiKey, BrokerId,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, GroupId,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, OffsetCommitRequest, ProduceRequest,
    RequestHeader, RequestKind, ResponseKind, TopicName,
};
use strom_protocol::{DecodedRequest, ErrorCode, Incoming, StrBytes};

use crate::console::{escape, segment};
use crate::handlers::Reply;
use crate::server::BrokerContext;

/// The largest form body accepted (a test message's key and value included).
pub const FORM_BYTES_MAX: usize = 64 * 1024;
/// How long an action waits for the controller or the write (Kafka's admin default).
const TIMEOUT_MS: i32 = 30_000;
/// The client id the console's requests carry (in logs and group member ids).
const CLIENT_ID: &str = "strom-console";

/// The process's CSRF token: 128 random bits, hex.
pub fn csrf_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The hidden form field carrying the token.
pub fn csrf_field() -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", csrf_token())
}

/// Refuses a request another site could have made (see the module comment).
pub(crate) fn check_request(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), Response> {
    let refuse = |why: &str| {
        Err((
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("refused: {why}\n"),
        )
            .into_response())
    };
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return refuse("a cross-site request (Sec-Fetch-Site)");
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or("");
        if origin != format!("http://{host}") && origin != format!("https://{host}") {
            return refuse("the Origin header names another site");
        }
    }
    let token = form.get("csrf").map(String::as_str).unwrap_or("");
    if token.len() != csrf_token().len() || token != csrf_token() {
        return refuse("missing or wrong form token; reload the console page and try again");
    }
    Ok(())
}

/// Runs `body` through the Kafka request path, as a client's request at `version`.
async fn kafka(
    context: &BrokerContext,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Result<ResponseKind, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let request = Incoming::Request(Box::new(DecodedRequest {
        header,
        api_key,
        body,
    }));
    // The console acts as the HTTP request's principal (`User:NAME` with Basic
    // authentication, else `User:ANONYMOUS`) from the HTTP client's address, on the first
    // served listener: with an authorizer configured, its actions are checked like that
    // principal's Kafka requests.
    let Some(session) = crate::http_auth::current_session(context) else {
        return Err("the broker serves no client listener".to_string());
    };
    match crate::handlers::handle(context, request, &session).await {
        Reply::Respond(response) => Ok(*response),
        Reply::RespondWithFiles(response, _) => Ok(*response),
        Reply::Silent | Reply::Close => Err("the broker closed the request".to_string()),
    }
}

/// The page after an action: what was done, or Kafka's error for why not (400).
pub(crate) fn outcome(back: &str, result: Result<String, String>) -> Response {
    let (status, title, text) = match result {
        Ok(done) => (StatusCode::OK, "Done", done),
        Err(error) => (StatusCode::BAD_REQUEST, "Refused", error),
    };
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title} - Strom</title>\
         </head><body><h1>{title}</h1><p id=outcome>{}</p><p><a href=\"{back}\">back</a></p>\
         </body></html>",
        escape(&text)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let code = ErrorCode(code);
    match message {
        Some(m) if !m.is_empty() => format!("{code}: {m}"),
        _ => code.to_string(),
    }
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map_or("", |v| v.trim())
}

fn number<T: std::str::FromStr>(form: &HashMap<String, String>, name: &str) -> Result<T, String> {
    field(form, name)
        .parse()
        .map_err(|_| format!("{name}: expected a number, got {:?}", field(form, name)))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Refuses a request another site could have made, else runs `action` (not started before
/// the check) and shows its outcome with a link back to `back`.
pub(crate) async fn act(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    back: &str,
    action: impl std::future::Future<Output = Result<String, String>>,
) -> Response {
    if let Err(refused) = check_request(headers, form) {
        return refused;
    }
    outcome(back, action.await)
}

/// `Ok` for error code 0, else Kafka's error as text.
fn checked(code: i16, message: Option<&StrBytes>) -> Result<(), String> {
    if code == 0 {
        Ok(())
    } else {
        Err(error_text(code, message))
    }
}

/// The console page of topic `name`.
fn topic_page(name: &str) -> String {
    format!("/topics/{}", segment(name))
}

fn unexpected() -> String {
    "unexpected answer".to_string()
}

fn no_answer(what: &str) -> String {
    format!("no answer for the {what}")
}

/// `POST /topics`: CreateTopics (`name`, `partitions`, `replication_factor`; -1 or empty for
/// the broker defaults).
pub async fn create_topic(
    State(context): State<Arc<BrokerContext>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, "/", async {
        let name = field(&form, "name").to_string();
        let or_default = |key: &str| -> Result<i32, String> {
            if field(&form, key).is_empty() {
                Ok(-1)
            } else {
                number(&form, key)
            }
        };
        let partitions = or_default("partitions")?;
        let replication = i16::try_from(or_default("replication_factor")?)
            .map_err(|_| "replication_factor: out of range".to_string())?;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(TIMEOUT_MS)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication)]);
        let ResponseKind::CreateTopics(response) = kafka(
            &context,
            ApiKey::CreateTopics,
            7,
            RequestKind::CreateTopics(request),
        )
        .await?
        else {
            return Err(unexpected());
        };
        let t = response.topics.first().ok_or_else(|| no_answer("topic"))?;
        checked(t.error_code, t.error_message.as_ref())?;
        Ok(format!(
            "Created topic {name} with {} partition(s).",
            t.num_partitions
        ))
    })
    .await
}

/// `POST /topics/{topic}/delete`: DeleteTopics.
pub async fn delete_topic(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, "/", async {
        let request = DeleteTopicsRequest::default()
            .with_timeout_ms(TIMEOUT_MS)
            .with_topic_names(vec![topic_name(&name)]);
        let ResponseKind::DeleteTopics(response) = kafka(
            &context,
            ApiKey::DeleteTopics,
            5,
            RequestKind::DeleteTopics(request),
        )
        .await?
        else {
            return Err(unexpected());
        };
        let t = response
            .responses
            .first()
            .ok_or_else(|| no_answer("topic"))?;
        checked(t.error_code, t.error_message.as_ref())?;
        Ok(format!("Deleted topic {name}."))
    })
    .await
}

/// `POST /topics/{topic}/partitions`: CreatePartitions to `total` partitions.
pub async fn add_partitions(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, &topic_page(&name), async {
        let total: i32 = number(&form, "total")?;
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(TIMEOUT_MS)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name(&name))
                    .with_count(total)
                    .with_assignments(None),
            ]);
        let ResponseKind::CreatePartitions(response) = kafka(
            &context,
            ApiKey::CreatePartitions,
            3,
            RequestKind::CreatePartitions(request),
        )
        .await?
        else {
            return Err(unexpected());
        };
        let t = response.results.first().ok_or_else(|| no_answer("topic"))?;
        checked(t.error_code, t.error_message.as_ref())?;
        Ok(format!("Topic {name} now has {total} partitions."))
    })
    .await
}

/// `POST /topics/{topic}/configs`: IncrementalAlterConfigs, SET `key` to `value`, or DELETE
/// it when `value` is empty (back to the default).
pub async fn set_config(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, &topic_page(&name), async {
        let key = field(&form, "key");
        let value = field(&form, "value");
        let (operation, shown) = if value.is_empty() {
            (1, None)
        } else {
            (0, Some(value.to_string()))
        };
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_string(key.to_string()))
                        .with_config_operation(operation)
                        .with_value(shown.map(StrBytes::from_string)),
                ]),
        ]);
        let ResponseKind::IncrementalAlterConfigs(response) = kafka(
            &context,
            ApiKey::IncrementalAlterConfigs,
            1,
            RequestKind::IncrementalAlterConfigs(request),
        )
        .await?
        else {
            return Err(unexpected());
        };
        let t = response
            .responses
            .first()
            .ok_or_else(|| no_answer("topic"))?;
        checked(t.error_code, t.error_message.as_ref())?;
        Ok(if value.is_empty() {
            format!("Deleted {key} on topic {name} (back to its default).")
        } else {
            format!("Set {key}={value} on topic {name}.")
        })
    })
    .await
}

/// `POST /topics/{topic}/produce`: Produce one record (`key`, `value`; an empty key is
/// null) to `partition` (default 0) with `acks=-1`.
pub async fn produce(
    State(context): State<Arc<BrokerContext>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, &topic_page(&name), async {
        let partition: i32 = if field(&form, "partition").is_empty() {
            0
        } else {
            number(&form, "partition")?
        };
        let key = form.get("key").filter(|k| !k.is_empty()).cloned();
        let value = form.get("value").cloned().unwrap_or_default();
        let now = crate::metadata::now_ms();
        let mut builder = strom_records::BatchBuilder::new(0, now);
        builder
            .append(
                now,
                key.map(Bytes::from),
                Some(Bytes::from(value)),
                Vec::new(),
            )
            .map_err(|e| e.to_string())?;
        let batch = builder.build().map_err(|e| e.to_string())?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(TIMEOUT_MS)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(topic_name(&name))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(Bytes::from(batch))),
                ])]);
        let ResponseKind::Produce(response) =
            kafka(&context, ApiKey::Produce, 9, RequestKind::Produce(request)).await?
        else {
            return Err(unexpected());
        };
        let p = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| no_answer("partition"))?;
        checked(p.error_code, p.error_message.as_ref())?;
        Ok(format!(
            "Produced 1 record to {name} partition {partition} at offset {}.",
            p.base_offset
        ))
    })
    .await
}

/// `POST /groups/{group}/reset`: commits new offsets for every partition of `topic` for
/// an inactive group, as `kafka-consumer-groups.sh --reset-offsets` does (OffsetCommit with
/// no member, which the coordinator refuses while the group has members): `to` is
/// `earliest`, `latest` (ListOffsets) or `offset` (the number in `offset`).
pub async fn reset_offsets(
    State(context): State<Arc<BrokerContext>>,
    Path(group): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, "/", async {
        let topic = field(&form, "topic").to_string();
        let image = context.metadata.image();
        let partitions: Vec<i32> = image
            .topic_by_name(&topic)
            .map(|t| t.partitions.keys().copied().collect())
            .ok_or_else(|| format!("No topic {topic}."))?;
        let targets: Vec<(i32, i64)> = match field(&form, "to") {
            "offset" => {
                let offset: i64 = number(&form, "offset")?;
                partitions.iter().map(|p| (*p, offset)).collect()
            }
            to @ ("earliest" | "latest") => {
                let timestamp = if to == "earliest" { -2 } else { -1 };
                list_offsets(&context, &topic, &partitions, timestamp).await?
            }
            other => {
                return Err(format!(
                    "to: expected earliest, latest or offset, got {other:?}"
                ))
            }
        };
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(
                        targets
                            .iter()
                            .map(|(p, o)| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_leader_epoch(-1)
                            })
                            .collect(),
                    ),
            ]);
        let ResponseKind::OffsetCommit(response) = kafka(
            &context,
            ApiKey::OffsetCommit,
            8,
            RequestKind::OffsetCommit(request),
        )
        .await?
        else {
            return Err(unexpected());
        };
        for p in response.topics.iter().flat_map(|t| &t.partitions) {
            checked(p.error_code, None)?;
        }
        let mut done = format!("Reset group {group} on {topic}:");
        for (p, o) in &targets {
            let _ = write!(done, " partition {p} to {o};");
        }
        Ok(done)
    })
    .await
}

/// Each partition's offset for `timestamp` (-2 earliest, -1 latest, else the first at or
/// after it), through ListOffsets.
pub async fn list_offsets(
    context: &BrokerContext,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>, String> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let ResponseKind::ListOffsets(response) = kafka(
        context,
        ApiKey::ListOffsets,
        7,
        RequestKind::ListOffsets(request),
    )
    .await?
    else {
        return Err(unexpected());
    };
    response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| checked(p.error_code, None).map(|()| (p.partition_index, p.offset)))
        .collect()
}
