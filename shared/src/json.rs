//! Strict JSON input: every body is an object, parsed into its type with errors that name the
//! offending field as a path (`rewards[0].amount`), or `body` when the document as a whole is wrong.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses a JSON object into `T`; the error names the offending field as a path
/// (`rewards[0].amount`), or `body` when the document as a whole is wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // serde would also read a struct from an array, positionally: every body is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde_json::Value>(bytes).is_err() => {
            return Err(Error::invalid("body", "is not valid JSON"));
        }
        _ => return Err(Error::invalid("body", "must be a JSON object")),
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // A syntax error concerns the document, not a field.
        let field = if path == "." || inner.is_syntax() || inner.is_eof() {
            "body".to_owned()
        } else {
            path
        };
        Error::invalid(field, inner.to_string())
    })?;
    deserializer
        .end()
        .map_err(|_| Error::invalid("body", "unexpected data after the JSON document"))?;
    Ok(value)
}
