//! What each fuzz target checks, shared by the cargo-fuzz targets in `fuzz_targets/` and by the
//! replay test (`crates/postern/tests/it/fuzz_replay.rs`), which runs every file of
//! `corpus/<target>/` and `regressions/<target>/` through the same function on each `cargo test`.
//!
//! Every function takes untrusted bytes, must return normally whatever they are (a panic is a
//! finding), and checks what must hold of any answer: limits respected, ids trimmed and
//! non-empty, error texts bounded, the streaming and DOM XPath paths agreeing.

use std::sync::OnceLock;

use postern_auth::basic;
use postern_auth::token::TokenKeys;
use postern_core::mpl::MplField;
use postern_core::odata_filter::{self, MAX_CONDITIONS};
use postern_partner::extract::{ExtractError, Extractor, Found, Limits, MAX_ECHO, Source};

/// What a target runs on one input.
pub(crate) type Check = fn(&[u8]);

/// The targets by name, as `cargo fuzz run <name>` and the corpus directories know them.
pub(crate) const TARGETS: &[(&str, Check)] = &[
    ("authorization", authorization),
    ("odata_filter", odata_filter),
    ("flow_yaml", flow_yaml),
    ("partner_xml", partner_xml),
    ("partner_json", partner_json),
    ("partner_edifact", partner_edifact),
    ("partner_x12", partner_x12),
    ("partner_idoc", partner_idoc),
];

/// An `Authorization` header value: Basic credentials, or a bearer token checked against a
/// real signing key.
pub(crate) fn authorization(data: &[u8]) {
    if let Some(token) = basic::strip_scheme(data, b"bearer") {
        if let Ok(text) = std::str::from_utf8(token) {
            // A token made by no key of ours never verifies.
            assert!(
                token_keys().verify(text.trim()).is_err(),
                "a forged token verified"
            );
        }
        return;
    }
    match basic::parse_basic(data) {
        Ok(c) => {
            assert!(data.len() <= basic::MAX_HEADER_LEN);
            assert!(!c.user().is_empty() && !c.user().contains(':'));
            // The password never shows in debug output.
            let shown = format!("{c:?}");
            let expected = format!("BasicCredentials {{ user: {:?}, .. }}", c.user());
            assert_eq!(shown, expected);
            assert!(c.user().len() + c.password().len() < data.len());
        }
        Err(e) => assert!(!e.as_str().is_empty()),
    }
}

fn token_keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let sealer = postern_auth::secret::Sealer::new(&[7; 32], "token keys");
        let now = 1_800_000_000_000;
        let key = postern_auth::token::new_key(&sealer, now).expect("an Ed25519 key");
        TokenKeys::build(&[key], &sealer, "https://fuzz/oauth/token", now).0
    })
}

/// A `$filter` of the MPL API, and the same text with any property name filterable.
pub(crate) fn odata_filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match odata_filter::parse_filter(text) {
        Ok(conditions) => {
            assert!(!conditions.is_empty() && conditions.len() <= MAX_CONDITIONS);
            for c in &conditions {
                let timed = matches!(c.field, MplField::LogStart | MplField::LogEnd);
                assert_eq!(timed, matches!(c.value, postern_core::mpl::Literal::Time(_)));
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
    let any = odata_filter::parse_filter_with(text, |name| Some((name.len(), name.ends_with("Time"))));
    if let Ok(found) = any {
        assert!(found.len() <= MAX_CONDITIONS);
    }
}

/// A flow document as `postern flow deploy` and the admin API take it.
pub(crate) fn flow_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match postern_flow::parse_flow(text) {
        Ok(flow) => {
            // What deployed must describe itself and route.
            assert!(!flow.id.to_string().is_empty());
            assert!(flow.address.path().starts_with('/'));
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Checks what holds of every extraction answer.
fn answer(result: &Result<Found, ExtractError>) {
    match result {
        Ok(found) => {
            assert!(!found.id.is_empty());
            assert_eq!(found.id.trim(), found.id);
        }
        Err(ExtractError::NotFound(m) | ExtractError::Malformed(m) | ExtractError::TooLarge(m)) => {
            // An error repeats at most MAX_ECHO characters of the payload, plus its own words.
            assert!(!m.is_empty() && m.chars().count() <= MAX_ECHO + 400, "{m}");
        }
        Err(_) => {}
    }
}

/// How much of an EDI payload the extractors read for the envelope.
const EDI_PREFIX: usize = 4096;

fn compiled(sources: &[Source]) -> Vec<Extractor> {
    let limits = Limits {
        max_xml_bytes: 1 << 20,
        max_json_bytes: 1 << 20,
        max_dom_bytes: 1 << 20,
        max_depth: 64,
        edi_prefix: EDI_PREFIX,
    };
    sources
        .iter()
        .map(|s| Extractor::compile(s, limits).expect("fuzz extractors compile"))
        .collect()
}

fn run(extractors: &[Extractor], data: &[u8]) -> Vec<Result<Found, ExtractError>> {
    let no_header = |_: &str| None;
    extractors
        .iter()
        .map(|e| {
            let r = e.extract(&no_header, data);
            answer(&r);
            r
        })
        .collect()
}

fn xpath(expr: &str) -> Source {
    Source::XPath {
        expr: expr.to_owned(),
        namespaces: vec![
            ("p".to_owned(), "urn:acme:order:v2".to_owned()),
            ("q".to_owned(), "urn:p".to_owned()),
        ],
    }
}

/// Simple paths stream; wrapped in `( )[1]` the same path runs on the DOM. On a document the DOM
/// reads whole (found or not found), the streaming reader must give the same answer.
const STREAMED: &[&str] = &[
    "/p:Order/p:Header/p:SenderId",
    "/a/b",
    "/a/b/text()",
    "/a/b/@id",
    "/q:a/*",
    "/*/*/*",
    "/ORDERS05/IDOC/EDI_DC40/SNDPRN",
];

/// XML through streaming XPath, DOM XPath (predicates, functions, `//`) and both compared.
pub(crate) fn partner_xml(data: &[u8]) {
    static EXTRACTORS: OnceLock<Vec<Extractor>> = OnceLock::new();
    let extractors = EXTRACTORS.get_or_init(|| {
        let mut sources: Vec<Source> = Vec::new();
        for path in STREAMED {
            sources.push(xpath(path));
            sources.push(xpath(&format!("({path})[1]")));
        }
        for expr in [
            "//p:SenderId[@scheme='GLN']",
            "normalize-space(/p:Order/p:Header/p:SenderId)",
            "substring-after(//b[2], ':')",
            "/a/b[last()]/@*",
            "concat(/a/@x, //c)",
        ] {
            sources.push(xpath(expr));
        }
        compiled(&sources)
    });
    let results = run(extractors, data);
    for (i, path) in STREAMED.iter().enumerate() {
        let (streamed, dom) = (&results[2 * i], &results[2 * i + 1]);
        match dom {
            Ok(_) | Err(ExtractError::NotFound(_)) => assert_eq!(
                streamed.as_ref().ok(),
                dom.as_ref().ok(),
                "{path}: streamed {streamed:?}, dom {dom:?}"
            ),
            _ => {}
        }
    }
}

/// JSON through JSONPath queries of each kind (members, indexes, wildcards, descendants,
/// filters).
pub(crate) fn partner_json(data: &[u8]) {
    static EXTRACTORS: OnceLock<Vec<Extractor>> = OnceLock::new();
    let extractors = EXTRACTORS.get_or_init(|| {
        let sources: Vec<Source> = [
            "$.order.sender.id",
            "$.a",
            "$[0]",
            "$..id",
            "$.order.parties[?@.role == 'SU'].ids[0][1]",
            "$..ids[*][1]",
            "$['a b'][-1]",
        ]
        .iter()
        .map(|q| Source::JsonPath((*q).to_owned()))
        .collect();
        compiled(&sources)
    });
    run(extractors, data);
}

/// The answer depends on the envelope prefix only.
fn envelope(extractor: &[Extractor], data: &[u8]) {
    let found = run(extractor, data);
    if data.len() > EDI_PREFIX {
        assert_eq!(found, run(extractor, &data[..EDI_PREFIX]));
    }
}

/// EDIFACT: the UNB sender, with or without UNA.
pub(crate) fn partner_edifact(data: &[u8]) {
    static EXTRACTORS: OnceLock<Vec<Extractor>> = OnceLock::new();
    envelope(EXTRACTORS.get_or_init(|| compiled(&[Source::Edifact])), data);
}

/// X12: the ISA sender and qualifier, with any separators.
pub(crate) fn partner_x12(data: &[u8]) {
    static EXTRACTORS: OnceLock<Vec<Extractor>> = OnceLock::new();
    envelope(EXTRACTORS.get_or_init(|| compiled(&[Source::X12])), data);
}

/// IDoc XML: the control record's sender partner and type.
pub(crate) fn partner_idoc(data: &[u8]) {
    static EXTRACTORS: OnceLock<Vec<Extractor>> = OnceLock::new();
    run(EXTRACTORS.get_or_init(|| compiled(&[Source::Idoc])), data);
}
