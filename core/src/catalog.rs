//! What clients learn about a model in the catalog.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies a model in the catalog. Sample models use readable ids (`gear`); uploads will use
/// content hashes, so the id is an opaque string to every client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelId(pub String);

impl ModelId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A catalog entry as the tablet lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    pub id: ModelId,
    /// Human name shown on the tablet's card.
    pub name: String,
    /// Triangle count: what the polygon budget of a render session is checked against.
    pub triangles: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_id_reads_as_it_was_made() {
        let id = ModelId::new("gear");
        assert_eq!((id.as_str(), id.to_string().as_str()), ("gear", "gear"));
    }
}
