//! Request bodies held to the API document: a JSON body is checked against the very schema
//! `/openapi.json` states for it before it is read, so what the document allows is what the
//! server reads, and what it forbids is refused with 400 naming where (serde alone would take an
//! array for an object, or a field of the wrong type a default covers).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::base::error::{AppError, Result};

/// A validator for each body type, by its schema's name, made on first use.
static VALIDATORS: LazyLock<RwLock<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(RwLock::default);

/// The validator of `T`'s schema, as the document states it: the schema and every schema it
/// refers to, under `components` as in the document, so its references resolve the same way.
fn validator<T: ToSchema>() -> Result<Arc<jsonschema::Validator>> {
    let name = T::name();
    if let Some(validator) = VALIDATORS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(name.as_ref())
    {
        return Ok(validator.clone());
    }
    let mut schemas = Vec::new();
    T::schemas(&mut schemas);
    schemas.push((name.to_string(), T::schema()));
    let schemas: serde_json::Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default()))
        .collect();
    let root = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": { "schemas": schemas },
    });
    let validator = jsonschema::draft202012::options()
        .build(&root)
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("the API document's schema {name} does not compile: {e}"))?;
    VALIDATORS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string(), validator.clone());
    Ok(validator)
}

/// The JSON body of a request that says it is JSON (`Content-Type: application/json`), checked
/// against the document's schema of `T` and read as one. A body of another type is refused (415)
/// before it is read, so a form a page of another site posts is never taken for one.
pub(crate) fn body<T: DeserializeOwned + ToSchema>(headers: &HeaderMap, bytes: &[u8]) -> Result<T> {
    if !crate::base::error::is_json(headers) {
        return Err(AppError::not_json());
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| AppError::bad_request(e.to_string(), None))?;
    check::<T>(&value)?;
    serde_json::from_value(value).map_err(|e| AppError::bad_request(e.to_string(), None))
}

/// Whether `value` is of the form the document states for `T`: 400 with the first place it is
/// not, and why.
pub(crate) fn check<T: ToSchema>(value: &Value) -> Result<()> {
    let validator = validator::<T>()?;
    // Whether, first: it stops at the first fault. Telling where and why gathers every fault of
    // every alternative of a `oneOf`, which for a large body is a great many.
    if validator.is_valid(value) {
        return Ok(());
    }
    let size = value.to_string().len();
    let told = (size <= EXPLAINED_BYTES)
        .then(|| validator.validate(value).err())
        .flatten()
        .map(|error| {
            let error = deepest(&error);
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "the body".into() } else { at };
            // The value at fault is not quoted back: the caller has it, and it may be long.
            shortened(&format!("{at}: {}", error.masked()))
        });
    Err(AppError::bad_request(
        told.unwrap_or_else(|| {
            format!(
                "the body is not of the form the API document states for {}",
                T::name()
            )
        }),
        None,
    ))
}

/// The largest body whose fault is told in detail.
const EXPLAINED_BYTES: usize = 16 * 1024;

/// Longest message about a body's fault (a pattern or an enum the schema states may be long).
const MESSAGE_CHARS: usize = 300;

fn shortened(message: &str) -> String {
    match message.char_indices().nth(MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_string(),
    }
}

/// The error to tell: for a value no alternative took (`oneOf`, as an optional field is written:
/// null or the type), the deepest error among the alternatives', which names the field within
/// that is wrong, not just the field that holds it.
fn deepest<'a>(error: &'a jsonschema::ValidationError<'a>) -> &'a jsonschema::ValidationError<'a> {
    use jsonschema::error::ValidationErrorKind;
    match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            context
                .iter()
                .flatten()
                .map(deepest)
                .max_by_key(|e| e.instance_path().as_str().len())
                .filter(|e| e.instance_path().as_str().len() > error.instance_path().as_str().len())
                .unwrap_or(error)
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use parallax_core::space::PropertiesPatch;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_body_the_document_forbids_is_refused_where_serde_alone_would_read_it() {
        // Serde reads a struct from an array; the document says an override is an object.
        let listed = json!({ "review": { "parts": { "Bolt": [null, null] } } });
        assert!(serde_json::from_value::<PropertiesPatch>(listed.clone()).is_ok());
        let refused = check::<PropertiesPatch>(&listed).unwrap_err();
        assert!(
            refused.to_string().starts_with("/review/parts/Bolt"),
            "{refused}"
        );

        // A long value is quoted only in part; a large body's fault is named, not explained.
        let long = json!({ "pick": { "part": "p".repeat(5000) } });
        let refused = check::<PropertiesPatch>(&long).unwrap_err().to_string();
        assert!(refused.chars().count() <= MESSAGE_CHARS + 1, "{refused}");
        let many = json!({ "review": { "cutPlanes": vec![1; 20_000] } });
        let refused = check::<PropertiesPatch>(&many).unwrap_err().to_string();
        assert!(refused.contains("PropertiesPatch"), "{refused}");

        let unknown = json!({ "selected": "gear" });
        assert!(check::<PropertiesPatch>(&unknown).is_err());
        let placed = json!({ "room": { "position": [0, 0, 0], "yawDegrees": 0, "size": 1 } });
        assert!(check::<PropertiesPatch>(&placed).is_ok());
        let short = json!({ "room": { "position": [0, 0], "yawDegrees": 0, "size": 1 } });
        assert!(check::<PropertiesPatch>(&short).is_err());
    }

    #[test]
    fn the_schema_of_every_body_compiles_with_all_it_refers_to() {
        use crate::http::browser::GuestJoin;
        use crate::http::spaces::CreateBody;
        use crate::spaces::space::Joiner;
        validator::<PropertiesPatch>().unwrap();
        validator::<CreateBody>().unwrap();
        validator::<Joiner>().unwrap();
        validator::<GuestJoin>().unwrap();
    }
}
