//! The REST API on axum: Confluent's paths, media type, JSON bodies and error bodies.
//! One handler routes by path segments (so every unknown path and method gets Confluent's
//! JSON error rather than a framework's default). Reads are answered from this process's
//! store; writes run on the leader, and a follower forwards them to it over HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;

use crate::client::{self, CONTENT_TYPE};
use crate::error::{code, RestError};
use crate::kafka::KafkaStore;
use crate::leader::Leader;
use crate::records::{Record, SchemaValue};
use crate::schema::SchemaType;
use crate::service::{self, Planned, SchemaRequest, Settings, VersionId};
use crate::store::Store;

/// Query parameter marking a request a follower forwarded (never forwarded again).
const FORWARDED_MARK: &str = "x-strom-registry-forwarded";
/// Attempts at a write whose record lost an id race to another writer.
const WRITE_ATTEMPTS_MAX: usize = 3;

/// What every request handler shares.
pub struct App {
    pub kafka: KafkaStore,
    pub leader: Leader,
    pub settings: Settings,
    pub request_bytes_max: usize,
    pub subjects_listed_max: usize,
    pub versions_listed_max: usize,
    pub schemas_listed_max: usize,
    /// Serializes this process's writes (plan, append, read back).
    pub write_lock: Mutex<()>,
    /// The longest one request may take, body read included (50002 after).
    pub request_timeout: Duration,
}

/// A successful answer.
enum Reply {
    Json(Value),
    /// A raw schema string (`.../schema` endpoints).
    Text(String),
    /// The leader's answer to a forwarded request, passed on as it is.
    Forwarded(client::Response),
}

/// The router: every path goes to [`handle`].
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

fn json_response(status: u16, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let timeout = app.request_timeout;
    match tokio::time::timeout(timeout, handle_in_time(app, request)).await {
        Ok(response) => response,
        Err(_) => {
            let e = RestError::timeout(format!(
                "The request took longer than {} ms",
                timeout.as_millis()
            ));
            json_response(e.status, Bytes::from(e.body()))
        }
    }
}

async fn handle_in_time(app: Arc<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let body = match axum::body::to_bytes(body, app.request_bytes_max).await {
        Ok(body) => body,
        Err(_) => {
            let e = RestError::new(
                code::SCHEMA_TOO_LARGE,
                format!(
                    "The request body is larger than {} bytes",
                    app.request_bytes_max
                ),
            );
            return json_response(e.status, Bytes::from(e.body()));
        }
    };
    let segments: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let forwarded = query.contains_key(FORWARDED_MARK);
    let ctx = Ctx {
        app: &app,
        method: parts.method.clone(),
        path_and_query,
        query,
        body,
        forwarded,
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match route(&ctx, &segs).await {
        Ok(Reply::Json(v)) => json_response(200, Bytes::from(v.to_string())),
        Ok(Reply::Text(t)) => json_response(200, Bytes::from(t)),
        Ok(Reply::Forwarded(r)) => json_response(r.status, r.body),
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(method = %parts.method, path = parts.uri.path(), error = %e, "request failed");
            }
            json_response(e.status, Bytes::from(e.body()))
        }
    }
}

struct Ctx<'a> {
    app: &'a App,
    method: Method,
    path_and_query: String,
    query: BTreeMap<String, String>,
    body: Bytes,
    forwarded: bool,
}

impl Ctx<'_> {
    fn flag(&self, name: &str) -> bool {
        self.query
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T, RestError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| RestError::http(400, format!("The request body is not valid JSON: {e}")))
    }

    fn store(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.app.kafka.read()
    }

    /// `offset` and `limit` of a listing, `limit` capped at `max`.
    fn window<T>(&self, items: Vec<T>, max: usize) -> Vec<T> {
        let offset = self
            .param("offset")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let limit = self
            .param("limit")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|l| *l >= 0)
            .map_or(max, |l| usize::try_from(l).unwrap_or(max).min(max));
        items.into_iter().skip(offset).take(limit).collect()
    }
}

/// Runs schema work (parsing, compatibility) on a thread with a deep stack (see
/// [`crate::schema::with_schema_stack`]).
fn deep<T: Send>(work: impl FnOnce() -> Result<T, RestError> + Send) -> Result<T, RestError> {
    crate::schema::with_schema_stack(work).map_err(RestError::store)?
}

fn not_found() -> RestError {
    RestError::http(404, "HTTP 404 Not Found")
}

fn method_not_allowed() -> RestError {
    RestError::http(405, "HTTP 405 Method Not Allowed")
}

async fn route(ctx: &Ctx<'_>, segs: &[&str]) -> Result<Reply, RestError> {
    let m = &ctx.method;
    match segs {
        [] => Ok(Reply::Json(json!({}))),
        ["subjects"] if m == Method::GET => Ok(Reply::Json(subjects(ctx))),
        ["subjects", s] => match *m {
            Method::POST => lookup(ctx, s),
            Method::DELETE => {
                let permanent = ctx.flag("permanent");
                let written =
                    write(ctx, |store| service::delete_subject(store, s, permanent)).await?;
                Ok(written.reply(|versions| json!(versions)))
            }
            _ => Err(method_not_allowed()),
        },
        ["subjects", s, "versions"] => match *m {
            Method::GET => versions(ctx, s),
            Method::POST => register(ctx, s).await,
            _ => Err(method_not_allowed()),
        },
        ["subjects", s, "versions", v] => {
            let v = VersionId::parse(v)?;
            match *m {
                Method::GET => {
                    let store = ctx.store();
                    let value = service::version(&store, s, v, ctx.flag("deleted"))?;
                    let format = ctx.param("format");
                    let text = deep(|| Ok(service::render_schema(&store, value, format)))?;
                    Ok(Reply::Json(service::version_json(value, text)))
                }
                Method::DELETE => {
                    let permanent = ctx.flag("permanent");
                    let written =
                        write(ctx, |store| service::delete_version(store, s, v, permanent)).await?;
                    Ok(written.reply(|version| json!(version)))
                }
                _ => Err(method_not_allowed()),
            }
        }
        ["subjects", s, "versions", v, "schema"] if m == Method::GET => {
            let v = VersionId::parse(v)?;
            let store = ctx.store();
            let value = service::version(&store, s, v, ctx.flag("deleted"))?;
            let format = ctx.param("format");
            Ok(Reply::Text(deep(|| {
                Ok(service::render_schema(&store, value, format))
            })?))
        }
        ["subjects", s, "versions", v, "referencedby"] if m == Method::GET => {
            let v = VersionId::parse(v)?;
            let store = ctx.store();
            let value = service::version(&store, s, v, true)?;
            Ok(Reply::Json(json!(store.referenced_by(s, value.version))))
        }
        ["schemas"] if m == Method::GET => Ok(Reply::Json(schemas(ctx))),
        ["schemas", "types"] if m == Method::GET => {
            Ok(Reply::Json(json!(["JSON", "PROTOBUF", "AVRO"])))
        }
        ["schemas", "ids", id, rest @ ..] if m == Method::GET => by_id(ctx, id, rest),
        ["compatibility", "subjects", s, "versions", rest @ ..] if m == Method::POST => {
            let version = match rest {
                [] => None,
                [v] => Some(VersionId::parse(v)?),
                _ => return Err(not_found()),
            };
            compatibility(ctx, s, version)
        }
        ["config"] => config(ctx, None).await,
        ["config", s] => config(ctx, Some(s)).await,
        ["mode"] => mode(ctx, None).await,
        ["mode", s] => mode(ctx, Some(s)).await,
        ["contexts"] if m == Method::GET => Ok(Reply::Json(json!(["."]))),
        ["subjects" | "schemas" | "contexts", ..] => Err(method_not_allowed()),
        _ => Err(not_found()),
    }
}

fn subjects(ctx: &Ctx<'_>) -> Value {
    let store = ctx.store();
    let deleted_only = ctx.flag("deletedOnly");
    let deleted = ctx.flag("deleted") || deleted_only;
    let prefix = ctx.param("subjectPrefix").unwrap_or("");
    let live: Vec<&str> = store.subjects(false);
    let list: Vec<&str> = store
        .subjects(deleted)
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .filter(|s| !deleted_only || !live.contains(s))
        .collect();
    json!(ctx.window(list, ctx.app.subjects_listed_max))
}

fn versions(ctx: &Ctx<'_>, subject: &str) -> Result<Reply, RestError> {
    let store = ctx.store();
    let deleted_only = ctx.flag("deletedOnly");
    let deleted = ctx.flag("deleted") || deleted_only;
    if !store.has_subject(subject, deleted) {
        return Err(RestError::subject_not_found(subject));
    }
    let list: Vec<i32> = store
        .versions(subject, deleted)
        .into_iter()
        .filter(|v| !deleted_only || v.deleted)
        .map(|v| v.version)
        .collect();
    Ok(Reply::Json(json!(
        ctx.window(list, ctx.app.versions_listed_max)
    )))
}

fn schemas(ctx: &Ctx<'_>) -> Value {
    let store = ctx.store();
    let prefix = ctx.param("subjectPrefix").unwrap_or("");
    let deleted = ctx.flag("deleted");
    let latest_only = ctx.flag("latestOnly");
    let mut out = Vec::new();
    for subject in store
        .subjects(deleted)
        .into_iter()
        .filter(|s| s.starts_with(prefix))
    {
        let versions = store.versions(subject, deleted);
        let chosen: Vec<&SchemaValue> = if latest_only {
            versions.last().copied().into_iter().collect()
        } else {
            versions
        };
        out.extend(
            chosen
                .into_iter()
                .map(|v| service::version_json(v, v.schema.clone())),
        );
    }
    json!(ctx.window(out, ctx.app.schemas_listed_max))
}

fn by_id(ctx: &Ctx<'_>, id: &str, rest: &[&str]) -> Result<Reply, RestError> {
    let id: i32 = id.parse().map_err(|_| not_found())?;
    let store = ctx.store();
    let value = store
        .by_id(id)
        .ok_or_else(|| RestError::schema_id_not_found(id))?;
    let deleted = ctx.flag("deleted");
    match rest {
        [] => {
            let mut map = Map::new();
            if value.schema_type != SchemaType::Avro {
                map.insert("schemaType".into(), json!(value.schema_type.name()));
            }
            if !value.references.is_empty() {
                map.insert("references".into(), json!(value.references));
            }
            if let Some(m) = &value.metadata {
                map.insert("metadata".into(), m.clone());
            }
            if let Some(r) = &value.rule_set {
                map.insert("ruleSet".into(), r.clone());
            }
            let format = ctx.param("format");
            let text = deep(|| Ok(service::render_schema(&store, value, format)))?;
            map.insert("schema".into(), json!(text));
            Ok(Reply::Json(Value::Object(map)))
        }
        ["schema"] => {
            let format = ctx.param("format");
            Ok(Reply::Text(deep(|| {
                Ok(service::render_schema(&store, value, format))
            })?))
        }
        ["versions"] => {
            let list: Vec<Value> = store
                .versions_of_id(id, deleted)
                .iter()
                .map(|v| json!({"subject": v.subject, "version": v.version}))
                .collect();
            Ok(Reply::Json(json!(list)))
        }
        ["subjects"] => {
            let mut list: Vec<&str> = store
                .versions_of_id(id, deleted)
                .iter()
                .map(|v| v.subject.as_str())
                .collect();
            list.dedup();
            Ok(Reply::Json(json!(list)))
        }
        _ => Err(not_found()),
    }
}

fn lookup(ctx: &Ctx<'_>, subject: &str) -> Result<Reply, RestError> {
    let request: SchemaRequest = ctx.json_body()?;
    let store = ctx.store();
    let settings = &ctx.app.settings;
    let (normalize, deleted, format) = (
        ctx.flag("normalize"),
        ctx.flag("deleted"),
        ctx.param("format"),
    );
    let body = deep(|| {
        let value = service::lookup(&store, settings, subject, &request, normalize, deleted)?;
        let text = service::render_schema(&store, value, format);
        Ok(service::version_json(value, text))
    })?;
    Ok(Reply::Json(body))
}

async fn register(ctx: &Ctx<'_>, subject: &str) -> Result<Reply, RestError> {
    let request: SchemaRequest = ctx.json_body()?;
    let normalize = ctx.flag("normalize");
    if !ctx.app.leader.is_leader() {
        // Invalid input is answered here; only a write worth making travels.
        let store = ctx.store();
        let settings = &ctx.app.settings;
        deep(|| service::register(&store, settings, subject, &request, normalize).map(|_| ()))?;
    }
    let settings = &ctx.app.settings;
    let written = write(ctx, |store| {
        service::register(store, settings, subject, &request, normalize)
    })
    .await?;
    Ok(written.reply(|r| json!({"id": r.id, "version": r.version})))
}

fn compatibility(
    ctx: &Ctx<'_>,
    subject: &str,
    version: Option<VersionId>,
) -> Result<Reply, RestError> {
    let request: SchemaRequest = ctx.json_body()?;
    let store = ctx.store();
    let settings = &ctx.app.settings;
    let normalize = ctx.flag("normalize");
    let errors = deep(|| {
        service::check_compatibility(&store, settings, subject, version, &request, normalize)
    })?;
    let mut body = json!({"is_compatible": errors.is_empty()});
    if ctx.flag("verbose") {
        body["messages"] = json!(errors);
    }
    Ok(Reply::Json(body))
}

async fn config(ctx: &Ctx<'_>, subject: Option<&str>) -> Result<Reply, RestError> {
    let settings = &ctx.app.settings;
    match ctx.method {
        Method::GET => {
            let store = ctx.store();
            let value =
                service::get_config(&store, settings, subject, ctx.flag("defaultToGlobal"))?;
            Ok(Reply::Json(value))
        }
        Method::PUT => {
            let body: Map<String, Value> = ctx.json_body()?;
            let written = write(ctx, |store| service::put_config(store, subject, &body)).await?;
            Ok(written.reply(|v| v))
        }
        Method::DELETE => {
            let written = write(ctx, |store| {
                service::delete_config(store, settings, subject)
            })
            .await?;
            Ok(written.reply(|v| v))
        }
        _ => Err(method_not_allowed()),
    }
}

async fn mode(ctx: &Ctx<'_>, subject: Option<&str>) -> Result<Reply, RestError> {
    let settings = &ctx.app.settings;
    match ctx.method {
        Method::GET => {
            let store = ctx.store();
            Ok(Reply::Json(service::get_mode(
                &store,
                subject,
                ctx.flag("defaultToGlobal"),
            )?))
        }
        Method::PUT => {
            let body: Map<String, Value> = ctx.json_body()?;
            let force = ctx.flag("force");
            let written = write(ctx, |store| {
                service::put_mode(store, settings, subject, &body, force)
            })
            .await?;
            Ok(written.reply(|v| v))
        }
        Method::DELETE => {
            let written = write(ctx, |store| service::delete_mode(store, subject)).await?;
            Ok(written.reply(|v| v))
        }
        _ => Err(method_not_allowed()),
    }
}

/// Runs a write on the leader: plan against a store read to the end of the topic, append
/// the records, wait until this process's reader applied them, check that the records
/// took effect (an id race lost to another writer is planned again). On a follower the
/// request is forwarded to the leader instead, and its answer returned.
async fn write<T, F>(ctx: &Ctx<'_>, plan: F) -> Result<Written<T>, RestError>
where
    T: Send,
    F: Fn(&Store) -> Result<Planned<T>, RestError> + Sync,
{
    let app = ctx.app;
    if !app.leader.is_leader() {
        let answer = forward(ctx).await?;
        if (200..300).contains(&answer.status) {
            // Read-your-writes here too: the follower answers once its own reader has
            // caught up with the topic the leader just wrote (best effort, bounded).
            if let Err(e) = app.kafka.catch_up(app.kafka.timeout()).await {
                tracing::debug!(error = %e, "catching up after a forwarded write");
            }
        }
        return Ok(Written::Forwarded(answer));
    }
    let _guard = app.write_lock.lock().await;
    let timeout = app.kafka.timeout();
    app.kafka.catch_up(timeout).await?;
    for _ in 0..WRITE_ATTEMPTS_MAX {
        let planned = {
            let store = app.kafka.read();
            deep(|| plan(&store))?
        };
        if planned.writes.is_empty() {
            return Ok(Written::Done(planned.response));
        }
        let next = app.kafka.append(&planned.writes).await?;
        app.kafka.wait_applied(next, timeout).await?;
        if took_effect(&app.kafka.read(), &planned) {
            return Ok(Written::Done(planned.response));
        }
        tracing::warn!("a schema record lost an id race to another writer; planning again");
    }
    Err(RestError::store(
        "Error while registering the schema due to generating an ID that is already in use.",
    ))
}

/// Whether the SCHEMA records of `planned` are in the store as written.
fn took_effect<T>(store: &Store, planned: &Planned<T>) -> bool {
    planned.writes.iter().all(|w| match &w.value {
        Some(Record::Schema(v)) => store
            .get(&v.subject, v.version)
            .is_some_and(|s| s.id == v.id && s.schema == v.schema && s.deleted == v.deleted),
        _ => true,
    })
}

/// A write's result: made here, or the leader's answer to the forwarded request.
enum Written<T> {
    Done(T),
    Forwarded(client::Response),
}

impl<T> Written<T> {
    fn reply(self, render: impl FnOnce(T) -> Value) -> Reply {
        match self {
            Written::Done(v) => Reply::Json(render(v)),
            Written::Forwarded(r) => Reply::Forwarded(r),
        }
    }
}

async fn forward(ctx: &Ctx<'_>) -> Result<client::Response, RestError> {
    if ctx.forwarded {
        return Err(RestError::new(
            code::UNKNOWN_LEADER,
            "Leader not known (a forwarded write reached a process that does not lead).",
        ));
    }
    let app = ctx.app;
    let mut last_error = None;
    for fresh in [false, true] {
        let Some(url) = app.leader.leader_url(fresh).await else {
            last_error = Some(RestError::new(code::UNKNOWN_LEADER, "Leader not known."));
            continue;
        };
        if url == app.leader.own_url() {
            last_error = Some(RestError::new(code::UNKNOWN_LEADER, "Leader not known."));
            continue;
        }
        match forward_to(ctx, &url).await {
            Ok(response) => return Ok(response),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| RestError::new(code::UNKNOWN_LEADER, "Leader not known.")))
}

async fn forward_to(ctx: &Ctx<'_>, url: &str) -> Result<client::Response, RestError> {
    let timeout = ctx.app.kafka.timeout() + Duration::from_secs(5);
    let body = (!ctx.body.is_empty()).then(|| ctx.body.clone());
    let path = forwarded_path(&ctx.path_and_query);
    client::send(
        url,
        ctx.method.as_str(),
        &path,
        body,
        timeout,
        16 * 1024 * 1024,
    )
    .await
    .map_err(|e| {
        RestError::new(
            code::REQUEST_FORWARDING_FAILED,
            format!("Error while forwarding the request to the leader: {e}"),
        )
    })
}

/// The forwarded request's path with the marker query parameter the leader checks.
fn forwarded_path(path_and_query: &str) -> String {
    let joiner = if path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{path_and_query}{joiner}{FORWARDED_MARK}=true")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_decode() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        let q = parse_query("deleted=true&subjectPrefix=a%2Fb&x");
        assert_eq!(q.get("deleted").map(String::as_str), Some("true"));
        assert_eq!(q.get("subjectPrefix").map(String::as_str), Some("a/b"));
        assert_eq!(q.get("x").map(String::as_str), Some(""));
        assert_eq!(
            forwarded_path("/a?b=1"),
            "/a?b=1&x-strom-registry-forwarded=true"
        );
    }
}
