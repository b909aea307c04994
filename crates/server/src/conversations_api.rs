//! `/v1/conversations`: OpenAI's Conversations API, kept in the response
//! store (`store`: in memory or the SQLite file, so conversations survive a
//! restart like stored responses do).
//!
//! A conversation is a record (`{id, object, created_at, metadata}`) and a
//! list of items in the Responses input shape. Items are checked with the
//! same conversion `/v1/responses` applies to `input` when they are added, so
//! a conversation never holds an item a later response would refuse; each
//! is given an `id` if it has none, and messages get list content, a `type`
//! and a `status`, as OpenAI returns them.
//!
//! `POST /v1/responses` with `conversation` (`responses_api`): the
//! conversation's items come before the request's `input`, and once the
//! response is done its input items and output items are appended ([`load`],
//! [`append`]).
//!
//! Bounds: conversations are evicted on their own, by the store's numbers
//! (`--store-max-responses` conversations, `--store-max-mb` of records and
//! items), the least recently written first.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::{ids, parse_body, AppState};

/// Most items one create or add call takes (OpenAI's limit).
pub const MAX_ITEMS_PER_CALL: usize = 20;
/// Items a list call returns by default and at most.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

#[derive(Debug, Deserialize)]
struct CreateRequest {
    #[serde(default)]
    items: Option<Vec<Value>>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct UpdateRequest {
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct AddRequest {
    items: Vec<Value>,
}

fn not_found(id: &str, param: Option<&str>) -> ApiError {
    ApiError::not_found(format!("Conversation with id '{id}' not found."), param)
        .with_code("not_found")
}

/// OpenAI's metadata rule: at most 16 string values, keys up to 64
/// characters, values up to 512. `null` is no metadata.
fn check_metadata(metadata: Option<Value>) -> Result<Value, ApiError> {
    let map = match metadata {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::invalid(
                format!(
                    "Invalid 'metadata': expected an object, found {}.",
                    crate::prompt::type_name(&other)
                ),
                Some("metadata"),
            ))
        }
    };
    if map.len() > 16 {
        return Err(ApiError::invalid(
            format!(
                "Invalid 'metadata': {} keys, at most 16 are allowed.",
                map.len()
            ),
            Some("metadata"),
        ));
    }
    for (k, v) in &map {
        if k.chars().count() > 64 {
            return Err(ApiError::invalid(
                "Invalid 'metadata': keys are at most 64 characters.",
                Some("metadata"),
            ));
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= 512 => {}
            _ => {
                return Err(ApiError::invalid(
                    format!(
                        "Invalid 'metadata.{k}': values are strings of at most 512 characters."
                    ),
                    Some(&format!("metadata.{k}")),
                ))
            }
        }
    }
    Ok(Value::Object(map))
}

/// Check `new` items as `/v1/responses` would read them after `prior` (tool
/// outputs must answer a call among either); errors name `items[i]`.
fn check_items(state: &AppState, prior: &[Value], new: &[Value]) -> Result<(), ApiError> {
    let mut call_names = Vec::new();
    let mut warnings = Vec::new();
    let sealer = &state.sealer;
    // Prior items were checked when they were added.
    let _ = crate::responses_api::convert_input(
        Some(&Value::Array(prior.to_vec())),
        &mut call_names,
        sealer,
        &mut warnings,
    );
    crate::responses_api::convert_input(
        Some(&Value::Array(new.to_vec())),
        &mut call_names,
        sealer,
        &mut warnings,
    )
    .map(|_| ())
    .map_err(|mut e| {
        e.message = e.message.replace("'input[", "'items[");
        e.param = e.param.map(|p| {
            p.strip_prefix("input")
                .map_or(p.clone(), |r| format!("items{r}"))
        });
        e
    })
}

fn check_count(items: &[Value]) -> Result<(), ApiError> {
    if items.len() > MAX_ITEMS_PER_CALL {
        return Err(ApiError::invalid(
            format!(
                "Invalid 'items': {} items, at most {MAX_ITEMS_PER_CALL} can be added at a time.",
                items.len()
            ),
            Some("items"),
        ));
    }
    Ok(())
}

/// An item as a conversation keeps it: with an id not in `taken` (a new one
/// when it has none or a taken one), messages in OpenAI's full shape.
fn normalize(item: &Value, taken: &mut HashSet<String>) -> (String, Value) {
    let mut obj: Map<String, Value> = item.as_object().cloned().unwrap_or_default();
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_string();
    if kind == "message" {
        obj.insert("type".into(), json!("message"));
        let assistant = obj.get("role").and_then(Value::as_str) == Some("assistant");
        if let Some(Value::String(text)) = obj.get("content") {
            let part = if assistant {
                json!({"type": "output_text", "text": text, "annotations": []})
            } else {
                json!({"type": "input_text", "text": text})
            };
            obj.insert("content".into(), json!([part]));
        }
        obj.entry("status").or_insert_with(|| json!("completed"));
    }
    let prefix = match kind.as_str() {
        "message" => "msg_",
        "function_call" => "fc_",
        "reasoning" => "rs_",
        _ => "item_",
    };
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && !taken.contains(id) => id.to_string(),
        _ => ids::new_id(prefix),
    };
    taken.insert(id.clone());
    obj.insert("id".into(), json!(id));
    (id, Value::Object(obj))
}

async fn all_items(state: &AppState, id: &str) -> Result<Option<Vec<Value>>, ApiError> {
    Ok(state
        .store
        .list_conversation_items(id, None, usize::MAX, false)
        .await?)
}

fn list_json(data: Vec<Value>, has_more: bool) -> Value {
    let id_of = |v: Option<&Value>| v.and_then(|i| i.get("id")).cloned().unwrap_or(Value::Null);
    json!({
        "object": "list",
        "first_id": id_of(data.first()),
        "last_id": id_of(data.last()),
        "has_more": has_more,
        "data": data,
    })
}

fn respond(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/conversations`.
pub(crate) async fn create(State(state): State<AppState>, body: Bytes) -> Response {
    respond(create_inner(&state, &body).await)
}

async fn create_inner(state: &AppState, body: &[u8]) -> Result<Value, ApiError> {
    let req: CreateRequest = parse_body(body)?;
    let metadata = check_metadata(req.metadata)?;
    let items = req.items.unwrap_or_default();
    check_count(&items)?;
    check_items(state, &[], &items)?;
    let mut taken = HashSet::new();
    let items: Vec<(String, Value)> = items.iter().map(|i| normalize(i, &mut taken)).collect();
    let id = ids::new_id("conv_");
    let record = json!({"id": id, "object": "conversation", "created_at": ids::unix_seconds(),
                        "metadata": metadata});
    state
        .store
        .create_conversation(id, record.clone(), items)
        .await?;
    Ok(record)
}

/// `GET /v1/conversations/{id}`.
pub(crate) async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    respond(match state.store.get_conversation(&id).await {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(not_found(&id, None)),
        Err(e) => Err(e.into()),
    })
}

/// `POST /v1/conversations/{id}`: new metadata.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(update_inner(&state, id, &body).await)
}

async fn update_inner(state: &AppState, id: String, body: &[u8]) -> Result<Value, ApiError> {
    let req: UpdateRequest = parse_body(body)?;
    let metadata = check_metadata(req.metadata)?;
    let mut record = state
        .store
        .get_conversation(&id)
        .await?
        .ok_or_else(|| not_found(&id, None))?;
    record["metadata"] = metadata;
    if !state
        .store
        .update_conversation(id.clone(), record.clone())
        .await?
    {
        return Err(not_found(&id, None));
    }
    Ok(record)
}

/// `DELETE /v1/conversations/{id}`.
pub(crate) async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    respond(match state.store.delete_conversation(&id).await {
        Ok(true) => Ok(json!({"id": id, "object": "conversation.deleted", "deleted": true})),
        Ok(false) => Err(not_found(&id, None)),
        Err(e) => Err(e.into()),
    })
}

/// `GET /v1/conversations/{id}/items?limit&order&after`.
pub(crate) async fn list_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    respond(list_inner(&state, &id, query).await)
}

async fn list_inner(
    state: &AppState,
    id: &str,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Value, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::invalid(format!("Invalid query string: {e}."), None))?;
    let param = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    format!(
                        "Invalid 'limit': {l:?}. Expected an integer between 1 and {MAX_LIMIT}."
                    ),
                    Some("limit"),
                ))
            }
        },
    };
    let desc = match param("order").as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("Invalid 'order': {other:?}. Supported values are: 'asc' and 'desc'."),
                Some("order"),
            ))
        }
    };
    let mut data = state
        .store
        .list_conversation_items(id, param("after"), limit + 1, desc)
        .await?
        .ok_or_else(|| not_found(id, None))?;
    let has_more = data.len() > limit;
    data.truncate(limit);
    Ok(list_json(data, has_more))
}

/// `POST /v1/conversations/{id}/items`: the added items, as a list.
pub(crate) async fn add_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    respond(add_inner(&state, &id, &body).await)
}

async fn add_inner(state: &AppState, id: &str, body: &[u8]) -> Result<Value, ApiError> {
    let req: AddRequest = parse_body(body)?;
    if req.items.is_empty() {
        return Err(ApiError::invalid(
            "Invalid 'items': give at least one item.",
            Some("items"),
        ));
    }
    check_count(&req.items)?;
    let prior = all_items(state, id)
        .await?
        .ok_or_else(|| not_found(id, None))?;
    check_items(state, &prior, &req.items)?;
    let mut taken: HashSet<String> = prior
        .iter()
        .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let items: Vec<(String, Value)> = req.items.iter().map(|i| normalize(i, &mut taken)).collect();
    let data: Vec<Value> = items.iter().map(|(_, v)| v.clone()).collect();
    if !state
        .store
        .add_conversation_items(id.to_string(), items)
        .await?
    {
        return Err(not_found(id, None));
    }
    Ok(list_json(data, false))
}

/// `GET /v1/conversations/{id}/items/{item_id}`.
pub(crate) async fn get_item(
    State(state): State<AppState>,
    Path((id, item)): Path<(String, String)>,
) -> Response {
    respond(get_item_inner(&state, &id, &item).await)
}

async fn get_item_inner(state: &AppState, id: &str, item: &str) -> Result<Value, ApiError> {
    if let Some(v) = state.store.get_conversation_item(id, item).await? {
        return Ok(v);
    }
    if state.store.get_conversation(id).await?.is_none() {
        return Err(not_found(id, None));
    }
    Err(
        ApiError::not_found(format!("Item with id '{item}' not found."), None)
            .with_code("not_found"),
    )
}

/// `DELETE /v1/conversations/{id}/items/{item_id}`: the conversation.
pub(crate) async fn delete_item(
    State(state): State<AppState>,
    Path((id, item)): Path<(String, String)>,
) -> Response {
    respond(delete_item_inner(&state, &id, &item).await)
}

async fn delete_item_inner(state: &AppState, id: &str, item: &str) -> Result<Value, ApiError> {
    let record = state
        .store
        .get_conversation(id)
        .await?
        .ok_or_else(|| not_found(id, None))?;
    if !state.store.delete_conversation_item(id, item).await? {
        return Err(
            ApiError::not_found(format!("Item with id '{item}' not found."), None)
                .with_code("not_found"),
        );
    }
    Ok(record)
}

/// The conversation a `/v1/responses` request names (`"conv_…"` or
/// `{"id": "conv_…"}`): its id and items, oldest first.
pub(crate) async fn load(
    state: &AppState,
    conversation: &Value,
) -> Result<(String, Vec<Value>), ApiError> {
    let id = match conversation {
        Value::String(id) => id.as_str(),
        Value::Object(o) => o.get("id").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                "Invalid 'conversation': expected a conversation id or {\"id\": ...}.",
                Some("conversation.id"),
            )
        })?,
        _ => {
            return Err(ApiError::invalid(
                "Invalid 'conversation': expected a conversation id or {\"id\": ...}.",
                Some("conversation"),
            ))
        }
    };
    let items = all_items(state, id)
        .await?
        .ok_or_else(|| not_found(id, Some("conversation")))?;
    Ok((id.to_string(), items))
}

/// A request's `input` as items: a string is one user message.
pub(crate) fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// After a response in conversation `id`: append its input and output
/// items. A failure (the conversation deleted meanwhile, the store
/// unwritable) is logged, the response is still answered.
pub(crate) async fn append(state: &AppState, id: &str, input: &[Value], output: &Value) {
    let prior = match all_items(state, id).await {
        Ok(Some(prior)) => prior,
        Ok(None) => {
            eprintln!("warning: conversation {id} is gone; the response was not added to it");
            return;
        }
        Err(e) => {
            eprintln!("warning: conversation {id} not updated: {}", e.message);
            return;
        }
    };
    let mut taken: HashSet<String> = prior
        .iter()
        .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let output = output.as_array().cloned().unwrap_or_default();
    let items: Vec<(String, Value)> = input
        .iter()
        .chain(output.iter())
        .map(|i| normalize(i, &mut taken))
        .collect();
    match state
        .store
        .add_conversation_items(id.to_string(), items)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("warning: conversation {id} is gone; the response was not added to it")
        }
        Err(e) => eprintln!("warning: conversation {id} not updated: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_fills_ids_and_message_shape() {
        let mut taken = HashSet::new();
        let (id, v) = normalize(&json!({"role": "user", "content": "hi"}), &mut taken);
        assert!(id.starts_with("msg_"));
        assert_eq!(v["type"], "message");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["content"][0], json!({"type": "input_text", "text": "hi"}));
        // A taken id is replaced; a free one kept.
        let (again, _) = normalize(
            &json!({"id": id, "role": "user", "content": "x"}),
            &mut taken,
        );
        assert_ne!(again, id);
        let (kept, _) = normalize(
            &json!({"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "{}"}),
            &mut taken,
        );
        assert_eq!(kept, "fc_1");
        let (_, a) = normalize(&json!({"role": "assistant", "content": "ok"}), &mut taken);
        assert_eq!(a["content"][0]["type"], "output_text");
    }

    #[test]
    fn metadata_rules() {
        assert_eq!(check_metadata(None).ok(), Some(json!({})));
        assert!(check_metadata(Some(json!({"a": "b"}))).is_ok());
        assert!(check_metadata(Some(json!({"a": 1}))).is_err());
        assert!(check_metadata(Some(json!([1]))).is_err());
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(check_metadata(Some(Value::Object(many))).is_err());
        assert!(check_metadata(Some(json!({"a": "x".repeat(513)}))).is_err());
    }
}
