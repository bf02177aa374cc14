//! The rules of koinonia, one module per capability. Each reads as a specification of what
//! happens; none imports `web` or axum. Handlers call one function here and render the result.

pub mod accounts;
pub mod audit;
pub mod contacts;
pub mod files;
pub mod inbound;
pub mod inbox;
pub mod library;
pub mod members;
pub mod notifications;
pub mod orphans;
pub mod outbound;
pub mod rescan;
pub mod retention;
pub mod sandbox;
pub mod webhooks;

/// A page of a list and the cursor of the next one (none on the last page).
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// From rows fetched with `limit + 1`: when the extra one came, it is dropped and the cursor
    /// of the last kept row is the next page's.
    pub fn of(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor)
        } else {
            None
        };
        Self { items: rows, next_cursor }
    }
}
