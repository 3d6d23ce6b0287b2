//! The page: one HTML file, one script, one style sheet, embedded.

/// The page (`{{title}}` is replaced when served).
pub(crate) const INDEX_HTML: &str = include_str!("../assets/index.html");
/// The page's script.
pub(crate) const APP_JS: &str = include_str!("../assets/app.js");
/// The page's style sheet.
pub(crate) const STYLE_CSS: &str = include_str!("../assets/style.css");
