//! What the rest of the coordinator stands on, depending on nothing of it: the store (SQLite or Postgres), the
//! clock, and the error every request path returns.

pub mod clock;
pub mod error;
pub mod store;
#[cfg(test)]
mod store_tests;

/// `url` without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("…"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "the URL given".to_string(),
    }
}
