//! `postern partner ...`: the Partner Directory as a file. `export FILE` writes it (JSON, or CSV
//! when FILE ends in `.csv`); `import FILE` creates what is new and updates what differs, in one
//! transaction, and `--dry-run` prints what it would change without changing anything.
//!
//! CSV: one row per entry, columns `Kind,Pid,Id,Agency,Scheme,User,Value,ContentType`, with Kind
//! one of `AlternativePartner`, `AuthorizedUser`, `StringParameter`, `BinaryParameter` (its
//! Value base64-encoded), as in the JSON document's SAP field names.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::client::{Client, cell};

#[derive(Subcommand)]
pub(crate) enum PartnerCommand {
    /// Write the whole Partner Directory to FILE (`-` for standard output).
    Export {
        /// The file to write.
        file: PathBuf,
        /// json or csv; by default from the file name (csv for `.csv`, json otherwise).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Create and update entries from FILE (JSON or CSV) in one transaction; nothing is deleted.
    Import {
        /// The file to read (`-` for standard input).
        file: PathBuf,
        /// json or csv; by default from the file name.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Print what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

/// File formats.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
}

fn format_of(file: &Path, given: Option<Format>) -> Format {
    given.unwrap_or_else(|| {
        if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            Format::Csv
        } else {
            Format::Json
        }
    })
}

const COLUMNS: [&str; 8] = [
    "Kind",
    "Pid",
    "Id",
    "Agency",
    "Scheme",
    "User",
    "Value",
    "ContentType",
];
/// (document key, CSV kind, fields).
const KINDS: [(&str, &str, &[&str]); 4] = [
    (
        "alternativePartners",
        "AlternativePartner",
        &["Agency", "Scheme", "Id", "Pid"],
    ),
    ("authorizedUsers", "AuthorizedUser", &["User", "Pid"]),
    ("stringParameters", "StringParameter", &["Pid", "Id", "Value"]),
    (
        "binaryParameters",
        "BinaryParameter",
        &["Pid", "Id", "ContentType", "Value"],
    ),
];

fn to_csv(doc: &Value) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for (key, kind, _) in KINDS {
        for entry in doc.get(key).and_then(Value::as_array).into_iter().flatten() {
            let row: Vec<String> = COLUMNS
                .iter()
                .map(|c| match *c {
                    "Kind" => kind.to_owned(),
                    c => entry.get(c).and_then(Value::as_str).unwrap_or("").to_owned(),
                })
                .collect();
            w.write_record(&row)?;
        }
    }
    Ok(w.into_inner()?)
}

fn from_csv(bytes: &[u8]) -> anyhow::Result<Value> {
    let mut r = csv::Reader::from_reader(bytes);
    let headers = r.headers().context("the CSV has no header row")?.clone();
    let index = |name: &str| headers.iter().position(|h| h.trim() == name);
    let kind_col = index("Kind").context("the CSV has no Kind column")?;
    let mut doc = Map::new();
    for (key, _, _) in KINDS {
        doc.insert(key.into(), Value::Array(Vec::new()));
    }
    for (n, record) in r.records().enumerate() {
        let record = record.with_context(|| format!("CSV row {}", n + 2))?;
        let kind = record.get(kind_col).unwrap_or("").trim();
        let Some((key, _, fields)) = KINDS.iter().find(|(_, k, _)| *k == kind) else {
            bail!(
                "CSV row {}: Kind {kind:?} is not one of AlternativePartner, AuthorizedUser, StringParameter, BinaryParameter",
                n + 2
            );
        };
        let mut entry = Map::new();
        for f in *fields {
            let value = index(f).and_then(|i| record.get(i)).unwrap_or("");
            entry.insert((*f).into(), json!(value));
        }
        if let Some(Value::Array(list)) = doc.get_mut(*key) {
            list.push(Value::Object(entry));
        }
    }
    Ok(Value::Object(doc))
}

pub(crate) async fn run(cmd: PartnerCommand, c: &Client) -> anyhow::Result<()> {
    match cmd {
        PartnerCommand::Export { file, format } => {
            let doc = c.get("/admin/v1/partner-directory").await?;
            let bytes = match format_of(&file, format) {
                Format::Json => serde_json::to_vec_pretty(&doc)?,
                Format::Csv => to_csv(&doc)?,
            };
            if file.as_os_str() == "-" {
                use std::io::Write;
                std::io::stdout().write_all(&bytes)?;
            } else {
                std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
                let count = |k: &str| doc.get(k).and_then(Value::as_array).map_or(0, Vec::len);
                eprintln!(
                    "exported {} alternative partners, {} authorized users, {} string and {} binary parameters to {}",
                    count("alternativePartners"),
                    count("authorizedUsers"),
                    count("stringParameters"),
                    count("binaryParameters"),
                    file.display()
                );
            }
        }
        PartnerCommand::Import {
            file,
            format,
            dry_run,
        } => {
            let bytes = if file.as_os_str() == "-" {
                use std::io::Read;
                let mut b = Vec::new();
                std::io::stdin().read_to_end(&mut b)?;
                b
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let doc = match format_of(&file, format) {
                Format::Json => serde_json::from_slice(&bytes).context("the file is not valid JSON")?,
                Format::Csv => from_csv(&bytes)?,
            };
            let path = format!("/admin/v1/partner-directory/import?dryRun={dry_run}");
            let v = c.post(&path, doc).await?;
            c.print(&v, |v| {
                for change in v.get("changes").and_then(Value::as_array).into_iter().flatten() {
                    println!("{:<7} {}", cell(change.get("action")), cell(change.get("entity")));
                }
                let listed = v.get("changesListed").and_then(Value::as_u64).unwrap_or(0);
                let total = v.get("created").and_then(Value::as_u64).unwrap_or(0)
                    + v.get("updated").and_then(Value::as_u64).unwrap_or(0);
                if total > listed {
                    println!("... and {} more", total - listed);
                }
                println!(
                    "{}{} to create, {} to update, {} unchanged",
                    if dry_run { "dry run: " } else { "" },
                    cell(v.get("created")),
                    cell(v.get("updated")),
                    cell(v.get("unchanged"))
                );
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let doc = json!({
            "alternativePartners": [{"Agency": "016", "Scheme": "DUNS", "Id": "12,3", "Pid": "ACME"}],
            "authorizedUsers": [{"User": "u", "Pid": "ACME"}],
            "stringParameters": [{"Pid": "ACME", "Id": "Note", "Value": "line 1\n\"quoted\""}],
            "binaryParameters": [{"Pid": "ACME", "Id": "b", "ContentType": "xml", "Value": "PGEvPg=="}],
        });
        let csv = to_csv(&doc).expect("csv");
        assert_eq!(from_csv(&csv).expect("parse"), doc);
        assert!(from_csv(b"Kind,Pid\nPartner,A\n").is_err());
    }
}
