//! Reading other shorteners' CSV exports (and the console's own) into
//! links to create. No page code here: `pages::import` drives it.
//!
//! The format is recognised by the header row; each column is found by
//! its name, whatever its position. See docs/import.md for the columns of
//! each format.

use std::collections::HashSet;
use std::io::Read;

use serde::{Deserialize, Serialize};

/// Most rows one import takes.
pub const MAX_ROWS: usize = 100_000;

/// The formats the importer recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The console's own export (`code, short_url, url, title, tags, ...`).
    Own,
    Yourls,
    Kutt,
    Shlink,
    Bitly,
    /// Any file with a `url` column (and optionally `alias`/`code`,
    /// `title`, `tags`, `expires_at`).
    Generic,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Own => "this console's export",
            Format::Yourls => "a YOURLS export",
            Format::Kutt => "a Kutt export",
            Format::Shlink => "a Shlink export",
            Format::Bitly => "a Bitly export",
            Format::Generic => "a CSV with a url column",
        }
    }
}

/// A link to create, as one row gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    pub url: String,
    pub alias: Option<String>,
    pub title: Option<String>,
    pub tags: Vec<String>,
    /// RFC 3339.
    pub expires_at: Option<String>,
}

impl Row {
    /// The body `POST /api/v1/links` (and each bulk item) takes.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "url": self.url, "tags": self.tags });
        if let Some(alias) = &self.alias {
            body["alias"] = serde_json::json!(alias);
        }
        if let Some(title) = &self.title {
            body["title"] = serde_json::json!(title);
        }
        if let Some(expires_at) = &self.expires_at {
            body["expires_at"] = serde_json::json!(expires_at);
        }
        body
    }
}

/// Why a row cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub field: &'static str,
    pub reason: String,
}

/// Where each wanted column is in the file.
#[derive(Debug, Default)]
struct Columns {
    url: Option<usize>,
    alias: Option<usize>,
    /// The alias is the last path segment of a short URL (Bitly's bitlink).
    alias_from_url: bool,
    title: Option<usize>,
    tags: Option<usize>,
    expires: Option<usize>,
}

fn normalise(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

/// The format and columns a header row names; `None` without a URL column.
fn columns(header: &csv::StringRecord) -> Option<(Format, Columns)> {
    let names: Vec<String> = header.iter().map(normalise).collect();
    let find = |candidates: &[&str]| names.iter().position(|n| candidates.contains(&n.as_str()));
    let has = |name: &str| names.iter().any(|n| n == name);
    let format = if has("short_url") && has("code") && has("clicks") {
        Format::Own
    } else if has("keyword") {
        Format::Yourls
    } else if has("address") && has("target") {
        Format::Kutt
    } else if has("shortcode") || has("longurl") || has("long_url") && has("short_code") {
        Format::Shlink
    } else if has("bitlink") || has("long_url") {
        Format::Bitly
    } else {
        Format::Generic
    };
    let mut columns = Columns {
        url: find(&[
            "url",
            "long_url",
            "longurl",
            "target",
            "original_url",
            "destination",
        ]),
        title: find(&["title", "description"]),
        tags: find(&["tags", "tag"]),
        expires: find(&[
            "expires_at",
            "expires",
            "expire_in",
            "valid_until",
            "validuntil",
            "expiration",
        ]),
        ..Columns::default()
    };
    columns.alias = find(&[
        "code",
        "alias",
        "keyword",
        "shortcode",
        "short_code",
        "address",
        "custom_back_half",
        "back_half",
    ]);
    if columns.alias.is_none() {
        columns.alias = find(&["bitlink", "short_url", "shorturl", "link"]);
        columns.alias_from_url = columns.alias.is_some();
    }
    columns.url?;
    Some((format, columns))
}

/// A cell, trimmed, with the `'` an export puts before formula-like text
/// taken off again.
fn cell(record: &csv::StringRecord, at: Option<usize>) -> Option<String> {
    let value = record.get(at?)?.trim();
    let value = match value.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => value,
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// An expiry in any of the forms exports use, as RFC 3339.
fn expiry(value: &str) -> Result<String, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(at
            .to_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Ok(at
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let at = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        return Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    Err(format!(
        "{value:?} is not a date (RFC 3339 or YYYY-MM-DD HH:MM:SS, UTC)"
    ))
}

/// Tags as exports write them: separated by spaces, commas or `|`.
fn tags(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c == '|' || c == ';' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The outcome of reading a file.
#[derive(Debug)]
pub struct Reading {
    pub format: Format,
    pub rows: u64,
    pub errors: Vec<RowError>,
}

/// Reads a CSV from `input` a record at a time, handing each importable
/// row to `keep` and collecting the rest as errors (at most
/// `max_errors` listed; all counted in `rows`). Only the checks the file
/// alone allows are made here: a target that is no http(s) URL, and an
/// alias twice in the file. The shortener checks the rest when the rows
/// are created.
pub fn read(
    input: impl Read,
    max_errors: usize,
    mut keep: impl FnMut(Row) -> std::io::Result<()>,
) -> Result<Reading, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| format!("the file is not CSV: {e}"))?
        .clone();
    let (format, columns) = columns(&header).ok_or_else(|| {
        "no column holds the target: name one url, long_url, target or longUrl".to_owned()
    })?;
    let mut reading = Reading {
        format,
        rows: 0,
        errors: Vec::new(),
    };
    let error = |reading: &mut Reading, line: u64, field: &'static str, reason: String| {
        if reading.errors.len() < max_errors {
            reading.errors.push(RowError {
                line,
                field,
                reason,
            });
        }
    };
    let mut aliases = HashSet::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(format!("the file stops being CSV: {e}")),
        }
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        reading.rows += 1;
        if reading.rows as usize > MAX_ROWS {
            return Err(format!("the file has more than {MAX_ROWS} rows; split it"));
        }
        let line = record.position().map_or(reading.rows + 1, |p| p.line());
        let row = match row_of(&record, line, &columns, &mut aliases) {
            Ok(row) => row,
            Err((field, reason)) => {
                error(&mut reading, line, field, reason);
                continue;
            }
        };
        keep(row).map_err(|e| format!("the rows could not be kept: {e}"))?;
    }
    Ok(reading)
}

/// The row a record at `line` becomes, or the field at fault and why: a
/// target that is no http(s) URL, an alias already in `aliases`, an
/// expiry that is no time.
fn row_of(
    record: &csv::StringRecord,
    line: u64,
    columns: &Columns,
    aliases: &mut HashSet<String>,
) -> Result<Row, (&'static str, String)> {
    let Some(url) = cell(record, columns.url) else {
        return Err(("url", "is empty".into()));
    };
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url::Url::parse(&url).is_err()
    {
        return Err(("url", format!("{url:?} is not an http(s) URL")));
    }
    let mut alias = cell(record, columns.alias);
    if columns.alias_from_url {
        alias = alias.and_then(|short| {
            short
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_owned)
        });
    }
    if let Some(alias) = &alias {
        if !aliases.insert(alias.clone()) {
            return Err((
                "alias",
                format!("{alias:?} is in the file twice; only its first row is kept"),
            ));
        }
    }
    let expires_at = match cell(record, columns.expires).map(|v| expiry(&v)) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(reason)) => return Err(("expires_at", reason)),
    };
    Ok(Row {
        line,
        url,
        alias,
        title: cell(record, columns.title),
        tags: cell(record, columns.tags)
            .map(|t| tags(&t))
            .unwrap_or_default(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> (Reading, Vec<Row>) {
        let mut rows = Vec::new();
        let reading = read(text.as_bytes(), 100, |row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
        (reading, rows)
    }

    #[test]
    fn each_format_is_recognised_by_its_header() {
        for (header, format) in [
            (
                "code,short_url,url,title,tags,created_at,expires_at,clicks",
                Format::Own,
            ),
            ("keyword,url,title,timestamp,ip,clicks", Format::Yourls),
            ("address,target,description,expire_in", Format::Kutt),
            (
                "shortCode,shortUrl,longUrl,title,tags,createdAt,visits",
                Format::Shlink,
            ),
            ("Title,Bitlink,Long URL,Created,Tags", Format::Bitly),
            ("url", Format::Generic),
        ] {
            let (reading, _) = read_all(&format!("{header}\n"));
            assert_eq!(reading.format, format, "{header}");
        }
        assert!(read("name,age\nx,1\n".as_bytes(), 10, |_| Ok(())).is_err());
    }

    #[test]
    fn rows_become_links_and_bad_rows_say_why() {
        let text = "\u{feff}Title,Bitlink,Long URL,Tags\n\
            Docs,https://bit.ly/3abcXYZ,https://example.com/docs,docs|q3\n\
            Twice,bit.ly/3abcXYZ,https://example.com/again,\n\
            Bad,https://bit.ly/zzz,ftp://example.com/,\n\
            ,,,\n\
            \"Formula\",https://bit.ly/f1,https://example.com/f,'-x\n";
        let (reading, rows) = read_all(text);
        assert_eq!(reading.rows, 4, "the blank row is skipped");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].alias.as_deref(), Some("3abcXYZ"));
        assert_eq!(rows[0].tags, ["docs", "q3"]);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].tags, ["-x"], "the export's ' is taken off");
        let fields: Vec<_> = reading.errors.iter().map(|e| (e.line, e.field)).collect();
        assert_eq!(fields, [(3, "alias"), (4, "url")]);
    }

    #[test]
    fn expiries_in_the_usual_forms() {
        assert_eq!(
            expiry("2026-12-24 18:30:00").unwrap(),
            "2026-12-24T18:30:00Z"
        );
        assert_eq!(
            expiry("2026-12-24T18:30:00+01:00").unwrap(),
            "2026-12-24T17:30:00Z"
        );
        assert_eq!(expiry("2026-12-24").unwrap(), "2026-12-24T00:00:00Z");
        assert!(expiry("soon").is_err());
    }
}

#[cfg(test)]
mod fixtures {
    use super::*;

    fn fixture(name: &str) -> (Reading, Vec<Row>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/import")
            .join(name);
        let mut rows = Vec::new();
        let reading = read(std::fs::File::open(path).unwrap(), 100, |row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
        assert!(reading.errors.is_empty(), "{name}: {:?}", reading.errors);
        (reading, rows)
    }

    #[test]
    fn one_file_per_format_reads_as_that_format() {
        let (reading, rows) = fixture("own.csv");
        assert_eq!(reading.format, Format::Own);
        assert_eq!(rows[0].alias.as_deref(), Some("launch"));
        assert_eq!(rows[0].tags, ["docs", "q3-launch"]);
        assert_eq!(
            rows[1].alias.as_deref(),
            Some("-dash"),
            "the export's ' is taken off"
        );
        assert_eq!(rows[1].title.as_deref(), Some("Title, with a comma"));
        assert_eq!(rows[1].expires_at.as_deref(), Some("2027-01-01T00:00:00Z"));

        let (reading, rows) = fixture("yourls.csv");
        assert_eq!(reading.format, Format::Yourls);
        assert_eq!(
            (rows[0].alias.as_deref(), rows[0].url.as_str()),
            (Some("ozh"), "https://ozh.org/")
        );
        assert_eq!(rows[0].title.as_deref(), Some("Ozh's blog"));

        let (reading, rows) = fixture("kutt.csv");
        assert_eq!(reading.format, Format::Kutt);
        assert_eq!(rows[0].alias.as_deref(), Some("kutt-docs"));
        assert_eq!(rows[0].title.as_deref(), Some("Kutt docs"));
        assert_eq!(rows[0].expires_at.as_deref(), Some("2027-06-01T00:00:00Z"));
        assert_eq!(rows[1].title, None);

        let (reading, rows) = fixture("shlink.csv");
        assert_eq!(reading.format, Format::Shlink);
        assert_eq!(rows[0].alias.as_deref(), Some("shlink-a"));
        assert_eq!(rows[0].tags, ["php", "shortener"]);
        assert_eq!(rows[1].url, "https://shlink.io/documentation/");

        let (reading, rows) = fixture("bitly.csv");
        assert_eq!(reading.format, Format::Bitly);
        assert_eq!(rows[0].alias.as_deref(), Some("3xYzAbC"));
        assert_eq!(rows[1].alias.as_deref(), Some("4qRsTuV"));
        assert_eq!(rows[0].tags, ["marketing"]);
    }
}
