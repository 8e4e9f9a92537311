//! The console's schemas page: subjects, versions, schema text and compatibility levels of
//! the schema registry (the in-process one of `schema.registry.enable=true`, or the one at
//! `strom.console.schema.registry.url`), registering a new version and changing a
//! compatibility level.
//!
//! **Same code path as registry clients.** Every read and write is a call of the
//! registry's Confluent REST API through [`strom_registry::access::RegistryAccess`] (for the
//! in-process registry, its own router: the same handlers, validation, compatibility
//! checks and leader forwarding a REST client gets); the registry's error code and
//! message are shown as they are. Writes are CSRF-guarded POSTs like the other console
//! actions. The registry has no ACLs of its own (as Confluent's open-source registry); with
//! `strom.http.authentication.method=BASIC` only authenticated users reach these pages.
//!
//! Bounded: at most [`SUBJECTS_SHOWN_MAX`] subjects are listed with their latest version.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Form};
use serde_json::{json, Value};
use strom_registry::access::RegistryAccess;
use strom_registry::client::encode_segment;

use crate::console::{escape, page, segment};
use crate::console_actions::{act, csrf_field};
use crate::http::HttpShared;

/// Subjects listed on the schemas page (each costs one call for its latest version).
pub const SUBJECTS_SHOWN_MAX: usize = 200;

/// Compatibility levels, as Confluent names them.
const LEVELS: [&str; 7] = [
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
];

fn no_registry() -> Response {
    page(
        "Schemas",
        "<p id=no-registry>No schema registry is configured: run one in-process with \
         <code>schema.registry.enable=true</code>, or point the console at one with \
         <code>strom.console.schema.registry.url=http://host:port</code>.</p>",
    )
}

fn access(shared: &HttpShared) -> Option<RegistryAccess> {
    shared.registry().map(|d| d.access().clone())
}

fn level_select(current: &str) -> String {
    let mut out = String::from("<select name=compatibility>");
    for level in LEVELS {
        let selected = if level == current { " selected" } else { "" };
        let _ = write!(out, "<option{selected}>{level}</option>");
    }
    out.push_str("</select>");
    out
}

fn register_form(subject: Option<&str>, schema_type: &str, text: &str) -> String {
    let subject_field = match subject {
        Some(s) => format!("<input type=hidden name=subject value=\"{}\">", escape(s)),
        None => "subject <input name=subject required placeholder=orders-value> ".to_string(),
    };
    let mut types = String::from("<select name=schema_type>");
    for t in ["AVRO", "JSON", "PROTOBUF"] {
        let selected = if t == schema_type { " selected" } else { "" };
        let _ = write!(types, "<option{selected}>{t}</option>");
    }
    types.push_str("</select>");
    format!(
        "<form method=post action=\"/schemas\" id=register>{}{subject_field}type {types}<br>\
         <textarea name=schema rows=10 required>{}</textarea><br><button>Register</button></form>",
        csrf_field(),
        escape(text)
    )
}

fn text_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `/schemas`: the global compatibility level, the subjects with their latest version, and
/// a form to register a schema under a new subject.
pub async fn subjects(Extension(shared): Extension<Arc<HttpShared>>) -> Response {
    let Some(registry) = access(&shared) else {
        return no_registry();
    };
    let mut body = format!("<p>From {}.</p>", escape(&registry.describe()));
    let global = match registry.call("GET", "/config", None).await {
        Ok(config) => text_of(&config, "compatibilityLevel").to_string(),
        Err(error) => {
            let _ = write!(body, "<p class=error>{}</p>", escape(&error.to_string()));
            return page("Schemas", &body);
        }
    };
    let _ = write!(
        body,
        "<form method=post action=\"/schemas/config\" id=global-compatibility>{}Global \
         compatibility: <span id=global-level>{}</span> → {} <button>Change</button></form>",
        csrf_field(),
        escape(&global),
        level_select(&global)
    );
    let subjects: Vec<String> = match registry.call("GET", "/subjects", None).await {
        Ok(Value::Array(list)) => list
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Ok(_) => Vec::new(),
        Err(error) => {
            let _ = write!(body, "<p class=error>{}</p>", escape(&error.to_string()));
            return page("Schemas", &body);
        }
    };
    body.push_str(
        "<h2>Subjects</h2><table id=subjects><tr><th>subject</th><th>latest version</th>\
         <th>schema id</th><th>type</th></tr>",
    );
    for subject in subjects.iter().take(SUBJECTS_SHOWN_MAX) {
        let path = format!("/subjects/{}/versions/latest", encode_segment(subject));
        let (version, id, kind) = match registry.call("GET", &path, None).await {
            Ok(latest) => (
                latest.get("version").and_then(Value::as_i64).unwrap_or(0),
                latest.get("id").and_then(Value::as_i64).unwrap_or(0),
                latest
                    .get("schemaType")
                    .and_then(Value::as_str)
                    .unwrap_or("AVRO")
                    .to_string(),
            ),
            Err(_) => (0, 0, "?".to_string()),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/schemas/{}\">{}</a></td><td class=n>{version}</td>\
             <td class=n>{id}</td><td>{kind}</td></tr>",
            segment(subject),
            escape(subject)
        );
    }
    body.push_str("</table>");
    if subjects.len() > SUBJECTS_SHOWN_MAX {
        let _ = write!(
            body,
            "<p>Showing {SUBJECTS_SHOWN_MAX} of {} subjects.</p>",
            subjects.len()
        );
    }
    body.push_str("<h2>Register a schema</h2>");
    body.push_str(&register_form(None, "AVRO", ""));
    page("Schemas", &body)
}

/// `/schemas/{subject}?version=N`: the subject's versions, one version's schema (the
/// latest by default), its compatibility level, and forms to change the level and to
/// register a new version.
pub async fn subject(
    Extension(shared): Extension<Arc<HttpShared>>,
    Path(subject): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(registry) = access(&shared) else {
        return no_registry();
    };
    let title = format!("Subject {subject}");
    let encoded = encode_segment(&subject);
    let versions: Vec<i64> = match registry
        .call("GET", &format!("/subjects/{encoded}/versions"), None)
        .await
    {
        Ok(Value::Array(list)) => list.iter().filter_map(Value::as_i64).collect(),
        Ok(_) => Vec::new(),
        Err(error) => {
            return page(
                &title,
                &format!("<p class=error>{}</p>", escape(&error.to_string())),
            )
        }
    };
    let wanted = query
        .get("version")
        .and_then(|v| v.parse::<i64>().ok())
        .map_or_else(|| "latest".to_string(), |v| v.to_string());
    let shown = registry
        .call(
            "GET",
            &format!("/subjects/{encoded}/versions/{wanted}"),
            None,
        )
        .await;
    let level = match registry
        .call(
            "GET",
            &format!("/config/{encoded}?defaultToGlobal=true"),
            None,
        )
        .await
    {
        Ok(config) => text_of(&config, "compatibilityLevel").to_string(),
        Err(error) => format!("unknown ({error})"),
    };
    let base = format!("/schemas/{}", segment(&subject));
    let mut body = String::from("<p>Versions: ");
    for v in &versions {
        let _ = write!(body, "<a href=\"{base}?version={v}\">{v}</a> ");
    }
    body.push_str("</p>");
    let _ = write!(
        body,
        "<form method=post action=\"{base}/config\" id=compatibility>{}Compatibility: \
         <span id=level>{}</span> → {} <button>Change</button></form>",
        csrf_field(),
        escape(&level),
        level_select(&level)
    );
    let (schema_type, text) = match &shown {
        Ok(version) => {
            let schema_type = version
                .get("schemaType")
                .and_then(Value::as_str)
                .unwrap_or("AVRO")
                .to_string();
            let text = text_of(version, "schema").to_string();
            let pretty = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| text.clone());
            let _ = write!(
                body,
                "<h2>Version <span id=version>{}</span>: schema id <span id=schema-id>{}</span>, \
                 {}</h2><pre id=schema>{}</pre>",
                version.get("version").and_then(Value::as_i64).unwrap_or(0),
                version.get("id").and_then(Value::as_i64).unwrap_or(0),
                escape(&schema_type),
                escape(&pretty)
            );
            if let Some(Value::Array(references)) = version.get("references") {
                if !references.is_empty() {
                    let _ = write!(
                        body,
                        "<p>References: <code>{}</code></p>",
                        escape(&Value::Array(references.clone()).to_string())
                    );
                }
            }
            // The form starts from the stored text (pretty-printing reorders object keys).
            (schema_type, text)
        }
        Err(error) => {
            let _ = write!(body, "<p class=error>{}</p>", escape(&error.to_string()));
            ("AVRO".to_string(), String::new())
        }
    };
    body.push_str("<h2>Register a new version</h2>");
    body.push_str(&register_form(Some(&subject), &schema_type, &text));
    page(&title, &body)
}

/// `POST /schemas`: registers `schema` (of `schema_type`) under `subject`, as
/// `POST /subjects/{subject}/versions`.
pub async fn register(
    Extension(shared): Extension<Arc<HttpShared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let subject = form.get("subject").map_or("", |s| s.trim()).to_string();
    let back = format!("/schemas/{}", segment(&subject));
    act(&headers, &form, &back, async {
        let registry = access(&shared).ok_or("No schema registry is configured.")?;
        if subject.is_empty() {
            return Err("subject: a subject name is needed".to_string());
        }
        let schema = form.get("schema").cloned().unwrap_or_default();
        let schema_type = form.get("schema_type").map_or("AVRO", |t| t.trim());
        let mut request = json!({ "schema": schema });
        if schema_type != "AVRO" {
            request["schemaType"] = json!(schema_type);
        }
        let path = format!("/subjects/{}/versions", encode_segment(&subject));
        let answer = registry
            .call("POST", &path, Some(&request))
            .await
            .map_err(|e| e.to_string())?;
        let id = answer.get("id").and_then(Value::as_i64).unwrap_or(-1);
        let version = registry
            .call(
                "POST",
                &format!("/subjects/{}", encode_segment(&subject)),
                Some(&request),
            )
            .await
            .ok()
            .and_then(|v| v.get("version").and_then(Value::as_i64));
        Ok(match version {
            Some(v) => format!("Registered subject {subject} version {v} with schema id {id}."),
            None => format!("Registered under subject {subject} with schema id {id}."),
        })
    })
    .await
}

async fn put_level(
    shared: &HttpShared,
    subject: Option<&str>,
    form: &HashMap<String, String>,
) -> Result<String, String> {
    let registry = access(shared).ok_or("No schema registry is configured.")?;
    let level = form.get("compatibility").map_or("", |l| l.trim());
    let path = match subject {
        Some(s) => format!("/config/{}", encode_segment(s)),
        None => "/config".to_string(),
    };
    let answer = registry
        .call("PUT", &path, Some(&json!({ "compatibility": level })))
        .await
        .map_err(|e| e.to_string())?;
    let set = text_of(&answer, "compatibility");
    Ok(match subject {
        Some(s) => format!("Compatibility of subject {s} is now {set}."),
        None => format!("Global compatibility is now {set}."),
    })
}

/// `POST /schemas/{subject}/config`: `PUT /config/{subject}` with `compatibility`.
pub async fn set_compatibility(
    Extension(shared): Extension<Arc<HttpShared>>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let back = format!("/schemas/{}", segment(&subject));
    act(
        &headers,
        &form,
        &back,
        put_level(&shared, Some(&subject), &form),
    )
    .await
}

/// `POST /schemas/config`: `PUT /config` (the global level) with `compatibility`.
pub async fn set_global_compatibility(
    Extension(shared): Extension<Arc<HttpShared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    act(&headers, &form, "/schemas", put_level(&shared, None, &form)).await
}
