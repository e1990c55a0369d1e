//! Paginated lists: `{"items": [...], "next_cursor": "..."|null}` with `?limit=` (default 50,
//! at most 200) and `?cursor=` (opaque; the key of the last item of the previous page).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The query string of a list route, as received.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl TryFrom<ListQuery> for PageRequest {
    type Error = Error;

    fn try_from(query: ListQuery) -> Result<Self> {
        let limit = match query.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                .ok_or_else(|| {
                    Error::invalid("limit", format!("must be an integer from 1 to {MAX_LIMIT}"))
                })?,
        };
        Ok(PageRequest {
            limit,
            cursor: query.cursor.filter(|cursor| !cursor.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: Option<&str>) -> Result<PageRequest> {
        PageRequest::try_from(ListQuery {
            limit: limit.map(str::to_owned),
            cursor: None,
        })
    }

    #[test]
    fn limits_default_and_are_bounded() {
        assert_eq!(page(None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(page(Some("200")).unwrap().limit, 200);
        assert_eq!(page(Some("1")).unwrap().limit, 1);
        for bad in ["0", "201", "-1", "ten", "1.5"] {
            assert_eq!(
                page(Some(bad)).unwrap_err().code(),
                "invalid_request",
                "{bad}"
            );
        }
    }
}
