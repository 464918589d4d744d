//! Tests for the extractors: realistic samples per format, hostile inputs, the agreement of the
//! streaming and DOM XPath paths, and a no-panic sweep over truncated and mutated samples.

use std::mem::discriminant;

use super::xml::{DOCTYPE_REFUSED, XmlStream};
use super::xpath::XPathExtractor;
use super::*;

const ORDER_NS: &str = "urn:acme:order:v2";

/// A purchase order in a default namespace, with a second, prefixed namespace inside.
const ORDER_DEFAULT_NS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Order xmlns="urn:acme:order:v2" xmlns:addr="urn:acme:address">
  <Header>
    <OrderNumber>4711</OrderNumber>
    <SenderId scheme="GLN">  4012345000009
    </SenderId>
    <addr:Address><addr:City>Walldorf</addr:City></addr:Address>
  </Header>
  <Items>
    <Item line="1"><Sku>A-1</Sku><Qty>2</Qty></Item>
    <Item line="2"><Sku>B-7</Sku><Qty>1</Qty></Item>
  </Items>
</Order>
"#;

/// The same order with the namespace on an `ord:` prefix (the flow binds it to `p:`).
const ORDER_PREFIXED: &str = r#"<?xml version="1.0"?>
<ord:Order xmlns:ord="urn:acme:order:v2">
  <ord:Header>
    <ord:OrderNumber>4712</ord:OrderNumber>
    <ord:SenderId scheme="DUNS"><![CDATA[123456789]]></ord:SenderId>
  </ord:Header>
  <ord:Items>
    <ord:Item line="1"><ord:Sku>C-3</ord:Sku></ord:Item>
  </ord:Items>
</ord:Order>"#;

const IDOC_ORDERS05: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ORDERS05>
  <IDOC BEGIN="1">
    <EDI_DC40 SEGMENT="1">
      <TABNAM>EDI_DC40</TABNAM>
      <MANDT>100</MANDT>
      <DOCNUM>0000000000123456</DOCNUM>
      <DIRECT>2</DIRECT>
      <IDOCTYP>ORDERS05</IDOCTYP>
      <MESTYP>ORDERS</MESTYP>
      <SNDPOR>SAPQ01</SNDPOR>
      <SNDPRT>KU</SNDPRT>
      <SNDPRN> 0000100001 </SNDPRN>
      <RCVPOR>POSTERN</RCVPOR>
      <RCVPRT>LS</RCVPRT>
      <RCVPRN>POSTERN</RCVPRN>
    </EDI_DC40>
    <E1EDK01 SEGMENT="1"><CURCY>EUR</CURCY><BSART>NB</BSART></E1EDK01>
    <E1EDP01 SEGMENT="1"><POSEX>000010</POSEX><MENGE>48</MENGE></E1EDP01>
  </IDOC>
</ORDERS05>"#;

const ORDER_JSON: &str = r#"{
  "order": {
    "id": "PO-4711",
    "sender": {"id": " ACME-DE ", "gln": 4012345000009, "active": true, "name": ""},
    "parties": [
      {"role": "BY", "ids": [["GLN", "4000001000005"], ["DUNS", "123456789"]]},
      {"role": "SU", "ids": [["GLN", "4000002000004"]]}
    ],
    "note": null
  }
}"#;

const EDIFACT_UNA: &str = "UNA:+.? 'UNB+UNOC:3+4012345000009:14+4000001000005:14+200401:1000+12345555+++++EANCOM'\
UNH+1+ORDERS:D:96A:UN:EAN008'BGM+220+128576+9'DTM+137:20200401:102'NAD+BY+5412345000013::9'\
NAD+SU+4012345500004::9'LIN+1++4000862141404:SRS'QTY+21:48'UNS+S'CNT+2:1'UNT+10+1'UNZ+1+12345555'";

const EDIFACT_PLAIN: &str = "UNB+UNOA:2+ACME?+1:ZZZ+BUYER:ZZZ+200401:1000+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\n\
BGM+220+PO-1?'A+9'\r\nUNT+3+1'\r\nUNZ+1+1'\r\n";

const X12_850: &str = "ISA*00*          *00*          *ZZ*ACMESENDER     *ZZ*RECEIVER       \
*200401*1000*U*00401*000000001*0*P*>~GS*PO*ACMESENDER*RECEIVER*20200401*1000*1*X*004010~\
ST*850*0001~BEG*00*SA*PO-4711**20200401~N1*BY*Buyer Inc*92*1001~PO1*1*10*EA*9.95**VP*SKU-1~\
CTT*1~SE*6*0001~GE*1*1~IEA*1*000000001~";

fn no_header(_: &str) -> Option<&'static str> {
    None
}

fn compile(source: Source) -> Extractor {
    Extractor::compile(&source, Limits::default()).expect("source compiles")
}

fn xpath(expr: &str) -> Extractor {
    compile(Source::XPath {
        expr: expr.to_owned(),
        namespaces: bindings(),
    })
}

fn bindings() -> Vec<(String, String)> {
    [
        ("p", ORDER_NS),
        ("q", "urn:p"),
        ("d", "urn:d"),
        ("a", "urn:acme:address"),
    ]
    .iter()
    .map(|(p, u)| ((*p).to_owned(), (*u).to_owned()))
    .collect()
}

fn id(extractor: &Extractor, body: &str) -> Result<String, ExtractError> {
    extractor
        .extract(&no_header, body.as_bytes())
        .map(|found| found.id)
}

fn found(id: &str, qualifier: Option<&str>) -> Found {
    Found {
        id: id.to_owned(),
        qualifier: qualifier.map(str::to_owned),
    }
}

fn is_not_found<T: std::fmt::Debug>(result: &Result<T, ExtractError>) -> bool {
    matches!(result, Err(ExtractError::NotFound(_)))
}

fn is_malformed<T: std::fmt::Debug>(result: &Result<T, ExtractError>) -> bool {
    matches!(result, Err(ExtractError::Malformed(_)))
}

fn is_too_large<T: std::fmt::Debug>(result: &Result<T, ExtractError>) -> bool {
    matches!(result, Err(ExtractError::TooLarge(_)))
}

fn billion_laughs() -> String {
    let mut entities = String::from(r#"<!ENTITY lol "lol">"#);
    for i in 2..=9 {
        let prev = if i == 2 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        entities.push_str(&format!(
            r#"<!ENTITY lol{i} "{}">"#,
            format!("&{prev};").repeat(10)
        ));
    }
    format!(r#"<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><lolz>&lol9;</lolz>"#)
}

const XXE: &str =
    r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;

fn deep_xml(levels: usize) -> String {
    "<a>".repeat(levels) + &"</a>".repeat(levels)
}

// ---------------------------------------------------------------------------------------------
// API surface

#[test]
fn extractor_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Extractor>();
}

#[test]
fn describe_and_needs_body() {
    let header = compile(Source::Header("X-Partner".to_owned()));
    assert!(!header.needs_body());
    assert_eq!(header.describe(), "header X-Partner");
    assert_eq!(
        xpath("/Order/Header/SenderId").describe(),
        "xpath /Order/Header/SenderId"
    );
    assert!(xpath("/Order/Header/SenderId").needs_body());
    assert_eq!(
        compile(Source::JsonPath("$.a".to_owned())).describe(),
        "jsonpath $.a"
    );
    assert_eq!(compile(Source::Edifact).describe(), "edifact UNB sender");
    assert_eq!(compile(Source::X12).describe(), "x12 ISA sender");
    assert_eq!(compile(Source::Idoc).describe(), "idoc EDI_DC40 sender partner");
    assert_eq!(Limits::default().max_xml_bytes, 16 << 20);
}

#[test]
fn compile_errors_name_the_problem() {
    let xp = |expr: &str, ns: Vec<(String, String)>| {
        Extractor::compile(
            &Source::XPath {
                expr: expr.to_owned(),
                namespaces: ns,
            },
            Limits::default(),
        )
        .expect_err("compile error")
        .0
    };
    assert!(xp("/a/b[", bindings()).contains("`/a/b[`"));
    assert!(xp("/z:Order/z:Id", bindings()).contains("prefix `z` is not declared"));
    assert!(xp("//a[@x = $v]", bindings()).contains("variable"));
    assert!(xp("foo(/a)", bindings()).contains("foo"));
    assert!(xp("substring(/a)", bindings()).contains("argument count"));
    assert!(xp(&format!("{}1{}", "(".repeat(40), ")".repeat(40)), bindings()).contains("nested"));
    assert!(xp(&format!("1{}", "+1".repeat(1000)), bindings()).contains("longer than 512"));
    let twice = vec![
        ("p".to_owned(), "urn:1".to_owned()),
        ("p".to_owned(), "urn:2".to_owned()),
    ];
    assert!(xp("/p:a", twice).contains("bound to both"));
    assert!(xp("/p:a", vec![("p".to_owned(), String::new())]).contains("cannot be bound"));

    let json = Extractor::compile(&Source::JsonPath("$.a[".to_owned()), Limits::default());
    assert!(json.expect_err("bad jsonpath").0.contains("JSONPath `$.a[`"));
    let header = Extractor::compile(&Source::Header("X Partner".to_owned()), Limits::default());
    assert!(
        header
            .expect_err("bad header")
            .0
            .contains("not a valid HTTP header name")
    );
}

// ---------------------------------------------------------------------------------------------
// Header

#[test]
fn header_is_trimmed_and_looked_up_in_lowercase() {
    let extractor = compile(Source::Header("X-Partner".to_owned()));
    let lookup = |name: &str| (name == "x-partner").then_some("  ACME  ");
    assert_eq!(
        extractor.extract(&lookup, b"").expect("found"),
        found("ACME", None)
    );
    let blank = |_: &str| Some("   ");
    assert_eq!(
        extractor.extract(&blank, b""),
        Err(ExtractError::NotFound("header X-Partner is empty".to_owned()))
    );
    assert_eq!(
        extractor.extract(&no_header, b""),
        Err(ExtractError::NotFound("header X-Partner missing".to_owned()))
    );
}

// ---------------------------------------------------------------------------------------------
// XPath

#[test]
fn xpath_streams_namespaced_orders_by_uri() {
    let sender = xpath("/p:Order/p:Header/p:SenderId");
    assert_eq!(id(&sender, ORDER_DEFAULT_NS), Ok("4012345000009".to_owned()));
    assert_eq!(id(&sender, ORDER_PREFIXED), Ok("123456789".to_owned()));
    let scheme = xpath("/p:Order/p:Header/p:SenderId/@scheme");
    assert_eq!(id(&scheme, ORDER_DEFAULT_NS), Ok("GLN".to_owned()));
    assert_eq!(id(&scheme, ORDER_PREFIXED), Ok("DUNS".to_owned()));
    let text = xpath("/p:Order/p:Header/p:SenderId/text()");
    assert_eq!(id(&text, ORDER_DEFAULT_NS), Ok("4012345000009".to_owned()));
    let city = xpath("/p:Order/p:Header/a:Address/a:City");
    assert_eq!(id(&city, ORDER_DEFAULT_NS), Ok("Walldorf".to_owned()));
    // XPath 1.0: an unprefixed name is in no namespace, whatever the document's default.
    let unqualified = xpath("/Order/Header/SenderId");
    assert_eq!(
        id(&unqualified, ORDER_DEFAULT_NS),
        Err(ExtractError::NotFound(
            "xpath /Order/Header/SenderId selects nothing".to_owned()
        ))
    );
    assert!(is_not_found(&id(&xpath("/p:Order/p:Missing"), ORDER_DEFAULT_NS)));
    for expr in [
        "/p:Order/p:Header/p:SenderId",
        "/p:Order/*/p:SenderId/@scheme",
        "/p:Order/p:Header/text()",
    ] {
        let compiled = XPathExtractor::compile(expr, &bindings()).expect("compiles");
        assert!(compiled.stream().is_some(), "{expr} should stream");
    }
}

#[test]
fn xpath_dom_handles_predicates_functions_and_descendants() {
    let cases = [
        ("/p:Order/p:Items/p:Item[2]/p:Sku", "B-7"),
        ("/p:Order/p:Items/p:Item[@line = '2']/p:Sku", "B-7"),
        ("//p:SenderId/@scheme", "GLN"),
        ("string(/p:Order/p:Header/p:OrderNumber)", "4711"),
        ("count(//p:Item)", "2"),
        ("sum(//p:Qty) * 2", "6"),
        ("concat(//p:Item[1]/p:Sku, '/', //a:City)", "A-1/Walldorf"),
        ("normalize-space(//p:SenderId)", "4012345000009"),
        ("//p:Qty = 1", "true"),
    ];
    for (expr, want) in cases {
        let compiled = XPathExtractor::compile(expr, &bindings()).expect("compiles");
        assert!(compiled.stream().is_none(), "{expr} should use the DOM");
        assert_eq!(id(&xpath(expr), ORDER_DEFAULT_NS), Ok(want.to_owned()), "{expr}");
    }
    assert!(is_not_found(&id(&xpath("//p:Item[3]/p:Sku"), ORDER_DEFAULT_NS)));
    assert!(
        is_not_found(&id(&xpath("//Item"), ORDER_DEFAULT_NS)),
        "unprefixed names are in no namespace"
    );
    let empty = id(&xpath("substring(//p:Sku, 10)"), ORDER_DEFAULT_NS);
    assert!(matches!(empty, Err(ExtractError::NotFound(m)) if m.ends_with("selects an empty value")));
}

/// Runs `expr` through the streaming and the DOM path on `doc`.
fn both_paths(
    expr: &str,
    doc: &str,
) -> (
    Result<Option<String>, ExtractError>,
    Result<Option<String>, ExtractError>,
) {
    let limits = Limits::default();
    let compiled = XPathExtractor::compile(expr, &bindings()).expect("compiles");
    let path = compiled.stream().expect("a streaming expression");
    let streamed = xml::text(doc.as_bytes(), &limits)
        .and_then(|text| path.find(&mut XmlStream::new(&text, limits.max_depth)));
    (streamed, compiled.select_dom(doc.as_bytes(), &limits))
}

#[test]
fn xpath_streaming_and_dom_paths_agree() {
    let docs = [
        ORDER_DEFAULT_NS.to_owned(),
        ORDER_PREFIXED.to_owned(),
        IDOC_ORDERS05.to_owned(),
        "<a><b>1</b><b>2</b></a>".to_owned(),
        "<a><b/><b>2</b></a>".to_owned(),
        "<a><b><c>x</c>y<!--k-->z</b></a>".to_owned(),
        "<a><b>abc<![CDATA[d<e]]>f&amp;g&#x41;&lt;</b></a>".to_owned(),
        "<a><b>\r\n x\ry\r\n</b></a>".to_owned(),
        "<a><b id='1&#9;2\r\n3\t4' q:id='ns' xmlns:q='urn:p'/><b id='second'/></a>".to_owned(),
        "<a xmlns='urn:d'><b xmlns=''>plain</b><b>ns</b></a>".to_owned(),
        "<x:a xmlns:x='urn:p'><x:b>1</x:b><y:b xmlns:y='urn:p'>2</y:b><b>3</b></x:a>".to_owned(),
        "<a><b><b>inner</b></b><c><b>no</b></c></a>".to_owned(),
        "<a>  <b>   </b><b>later</b></a>".to_owned(),
        "<a><b><c/>tail</b></a>".to_owned(),
        "<a><b><!-- only a comment --></b><b>t</b></a>".to_owned(),
        "<?xml version='1.0'?><!-- c --><?pi x?><a><?pi y?><b>v<?pi z?>w</b></a><!-- end -->".to_owned(),
        "\u{FEFF}<a><b>bom</b></a>".to_owned(),
        "<a><b>caf\u{e9} \u{1F600}</b></a>".to_owned(),
        deep_xml(128),
        deep_xml(129),
        deep_xml(127).replace("<a></a>", "<a/>"),
        // Broken before any match can complete (a document broken after the first match is read
        // only up to the match by the streaming path: see `streaming_stops_at_the_first_match`).
        "<a><b>x</b".to_owned(),
        "<a><b>x</c></a>".to_owned(),
        "<a>&undefined;</a>".to_owned(),
        "<!DOCTYPE a><a><b>1</b></a>".to_owned(),
        XXE.to_owned(),
        billion_laughs(),
        String::new(),
        "   ".to_owned(),
    ];
    let exprs = [
        "/a",
        "/a/b",
        "/a/b/text()",
        "/a/b/@id",
        "/a/b/@q:id",
        "/a/b/@*",
        "/a/*",
        "/a/*/text()",
        "/q:a/q:b",
        "/q:a/q:b/text()",
        "/q:a/*",
        "/q:a/b",
        "/d:a/b",
        "/d:a/d:b",
        "/a/b/b",
        "/a/c/b",
        "/*/*/*",
        "/a/a/a",
        "/Order/Header/SenderId",
        "/p:Order/p:Header/p:SenderId",
        "/p:Order/p:Header/p:SenderId/@scheme",
        "/p:Order/p:Header/p:SenderId/text()",
        "/p:Order/p:Items/p:Item/@line",
        "/ORDERS05/IDOC/EDI_DC40/SNDPRN",
        "/*/IDOC/*/SNDPRT/text()",
        "/p:*/p:Header/a:*/a:City",
    ];
    let mut compared = 0;
    for doc in &docs {
        for expr in exprs {
            let (streamed, dom) = both_paths(expr, doc);
            let context = format!("{expr} on {:?}", &doc[..doc.len().min(60)]);
            match (&streamed, &dom) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{context}"),
                (Err(a), Err(b)) => assert_eq!(discriminant(a), discriminant(b), "{context}: {a} / {b}"),
                _ => panic!("{context}: stream {streamed:?}, dom {dom:?}"),
            }
            compared += 1;
        }
    }
    assert_eq!(compared, docs.len() * exprs.len());
}

#[test]
fn streaming_stops_at_the_first_match() {
    let (streamed, dom) = both_paths("/a/b", "<a><b>x</b><c></a>");
    assert_eq!(streamed, Ok(Some("x".to_owned())));
    assert!(is_malformed(&dom));
}

#[test]
fn xpath_text_nodes_join_cdata_and_stop_at_markup() {
    let (streamed, dom) = both_paths(
        "/a/b/text()",
        "<a><b>abc<![CDATA[def]]>g&amp;h<!--x-->tail</b></a>",
    );
    assert_eq!(streamed, Ok(Some("abcdefg&h".to_owned())));
    assert_eq!(dom, streamed);
    let (streamed, dom) = both_paths("/a/b/@id", "<a><b id='1\r\n2'/></a>");
    assert_eq!(streamed, Ok(Some("1 2".to_owned())));
    assert_eq!(dom, streamed);
}

#[test]
fn xpath_refuses_doctype_and_entities() {
    for expr in ["/lolz", "//lolz", "/foo", "//foo"] {
        let extractor = xpath(expr);
        for doc in [billion_laughs(), XXE.to_owned()] {
            let result = id(&extractor, &doc);
            assert_eq!(
                result,
                Err(ExtractError::Malformed(DOCTYPE_REFUSED.to_owned())),
                "{expr}"
            );
        }
    }
    let internal = r#"<!DOCTYPE a [<!ENTITY e "SECRET">]><a>&e;</a>"#;
    assert!(is_malformed(&id(&xpath("/a"), internal)));
    assert!(is_malformed(&id(&xpath("//a"), internal)));
    let late = "<a><b>1</b></a><!DOCTYPE a>";
    assert!(is_malformed(&id(&xpath("//b"), late)));
    let inside = r#"<a><!DOCTYPE x [<!ENTITY e "SECRET">]><b>&e;</b></a>"#;
    for expr in ["/a/b", "//b"] {
        let result = id(&xpath(expr), inside);
        assert!(
            is_malformed(&result) && !format!("{result:?}").contains("SECRET"),
            "{expr}: {result:?}"
        );
    }
    // Many predefined references are fine: no DTD, no expansion risk, no 10 000 cap.
    let many = format!("<a><b>{}</b></a>", "&amp;".repeat(20_000));
    assert_eq!(id(&xpath("string-length(//b)"), &many), Ok("20000".to_owned()));
}

#[test]
fn xpath_limits_depth_and_size() {
    let deep = deep_xml(10_000);
    for expr in ["/a/a", "//a[1]"] {
        let result = id(&xpath(expr), &deep);
        assert_eq!(
            result,
            Err(ExtractError::TooLarge(
                "XML nesting is deeper than 128 levels".to_owned()
            ))
        );
    }
    let small = Limits {
        max_xml_bytes: 64,
        ..Limits::default()
    };
    let extractor = Extractor::compile(
        &Source::XPath {
            expr: "/p:Order".to_owned(),
            namespaces: bindings(),
        },
        small,
    )
    .expect("compiles");
    let result = extractor.extract(&no_header, ORDER_DEFAULT_NS.as_bytes());
    assert!(matches!(result, Err(ExtractError::TooLarge(m)) if m.contains("over the limit of 64 bytes")));

    // The DOM has its own, lower bound; a simple path streams past it.
    let dom_small = Limits {
        max_dom_bytes: 64,
        ..Limits::default()
    };
    let compile = |expr: &str| {
        Extractor::compile(
            &Source::XPath {
                expr: expr.to_owned(),
                namespaces: bindings(),
            },
            dom_small,
        )
        .expect("compiles")
    };
    let dom = compile("//p:SenderId").extract(&no_header, ORDER_DEFAULT_NS.as_bytes());
    assert!(matches!(dom, Err(ExtractError::TooLarge(m)) if m.contains("for this XPath")));
    let streamed = compile("/p:Order/p:Header/p:SenderId").extract(&no_header, ORDER_DEFAULT_NS.as_bytes());
    assert!(streamed.is_ok(), "{streamed:?}");
}

#[test]
fn xpath_reports_malformed_input() {
    for expr in ["/a/b", "//b"] {
        let extractor = xpath(expr);
        let mismatched = id(&extractor, "<a>\n<c>\n</b></a>");
        assert!(
            matches!(&mismatched, Err(ExtractError::Malformed(m)) if m.contains("line 3")),
            "{mismatched:?}"
        );
        assert!(is_malformed(&id(&extractor, "")));
        assert!(is_malformed(&id(&extractor, "not xml at all")));
        let latin1 = extractor.extract(&no_header, b"<a><b>M\xFCller</b></a>");
        assert!(
            matches!(&latin1, Err(ExtractError::Malformed(m)) if m.contains("UTF-8")),
            "{latin1:?}"
        );
        let declared = extractor.extract(
            &no_header,
            b"<?xml version='1.0' encoding='ISO-8859-1'?><a><b>M\xFCller</b></a>",
        );
        assert_eq!(declared.map(|f| f.id), Ok("M\u{fc}ller".to_owned()));
        let utf16: Vec<u8> = "\u{FEFF}<a><b>wide</b></a>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            extractor.extract(&no_header, &utf16).map(|f| f.id),
            Ok("wide".to_owned())
        );
    }
}

#[test]
fn error_messages_echo_little_payload() {
    let long = "x".repeat(10_000);
    let docs = [
        format!("<a>&{long};</a>"),
        format!("<a><{long}></b></a>"),
        format!("<a {long}></a>"),
        format!("<a>{long}</a><{long}/>"),
    ];
    for doc in &docs {
        for expr in ["/a/b", "//b"] {
            let err = id(&xpath(expr), doc).expect_err("malformed");
            assert!(err.to_string().len() < 300, "{expr}: {err}");
        }
        let err = compile(Source::Idoc)
            .extract(&no_header, doc.as_bytes())
            .expect_err("malformed");
        assert!(err.to_string().len() < 300, "{err}");
    }
    let json = compile(Source::JsonPath("$.a".to_owned()));
    let err = json
        .extract(&no_header, format!("{{\"a\": {long}}}").as_bytes())
        .expect_err("bad");
    assert!(err.to_string().len() < 300, "{err}");
}

// ---------------------------------------------------------------------------------------------
// JSONPath

#[test]
fn jsonpath_selects_scalars_from_nested_orders() {
    let cases = [
        ("$.order.sender.id", "ACME-DE"),
        ("$.order.sender.gln", "4012345000009"),
        ("$.order.sender.active", "true"),
        ("$.order.parties[0].ids[1][1]", "123456789"),
        ("$.order.parties[?@.role == 'SU'].ids[0][1]", "4000002000004"),
        ("$..ids[*][1]", "4000001000005"),
    ];
    for (expr, want) in cases {
        let extractor = compile(Source::JsonPath(expr.to_owned()));
        assert_eq!(id(&extractor, ORDER_JSON), Ok(want.to_owned()), "{expr}");
    }
    let run = |expr: &str| id(&compile(Source::JsonPath(expr.to_owned())), ORDER_JSON);
    assert!(
        matches!(run("$.order.note"), Err(ExtractError::Malformed(m)) if m.contains("non-scalar value (null)"))
    );
    assert!(matches!(run("$.order.parties"), Err(ExtractError::Malformed(m)) if m.contains("(an array)")));
    assert!(matches!(run("$.order"), Err(ExtractError::Malformed(m)) if m.contains("(an object)")));
    assert_eq!(
        run("$.order.missing"),
        Err(ExtractError::NotFound(
            "jsonpath $.order.missing selects nothing".to_owned()
        ))
    );
    assert!(is_not_found(&run("$.order.sender.name")));
}

#[test]
fn jsonpath_rejects_bad_json_and_limits() {
    let extractor = compile(Source::JsonPath("$.a".to_owned()));
    let bad = extractor.extract(&no_header, b"{\"a\": }");
    assert!(
        matches!(&bad, Err(ExtractError::Malformed(m)) if m.starts_with("invalid JSON at line 1, column 7")),
        "{bad:?}"
    );
    assert!(is_malformed(&extractor.extract(&no_header, b"")));
    assert!(is_malformed(
        &extractor.extract(&no_header, b"{\"a\": \"M\xFCller\"}")
    ));
    assert_eq!(
        extractor
            .extract(&no_header, b"\xEF\xBB\xBF{\"a\": 7}")
            .map(|f| f.id),
        Ok("7".to_owned())
    );

    let nested = |levels: usize| {
        format!(
            r#"{{"a": 1, "b": {}{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        )
    };
    assert_eq!(
        extractor
            .extract(&no_header, nested(127).as_bytes())
            .map(|f| f.id),
        Ok("1".to_owned())
    );
    assert!(is_too_large(
        &extractor.extract(&no_header, nested(128).as_bytes())
    ));
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let result = extractor.extract(&no_header, deep.as_bytes());
    assert!(
        matches!(&result, Err(ExtractError::TooLarge(m)) if m.contains("127")),
        "{result:?}"
    );

    let shallow = Limits {
        max_depth: 3,
        ..Limits::default()
    };
    let limited = Extractor::compile(&Source::JsonPath("$.a".to_owned()), shallow).expect("compiles");
    assert_eq!(
        limited
            .extract(&no_header, br#"{"a": "x", "b": [["]]]]"]]}"#)
            .map(|f| f.id),
        Ok("x".to_owned())
    );
    assert!(is_too_large(
        &limited.extract(&no_header, br#"{"a": "x", "b": [[[1]]]}"#)
    ));

    let small = Limits {
        max_json_bytes: 8,
        ..Limits::default()
    };
    let tiny = Extractor::compile(&Source::JsonPath("$.a".to_owned()), small).expect("compiles");
    assert!(is_too_large(
        &tiny.extract(&no_header, br#"{"a": "long enough"}"#)
    ));
}

// ---------------------------------------------------------------------------------------------
// EDIFACT

fn edifact(body: &[u8]) -> Result<Found, ExtractError> {
    compile(Source::Edifact).extract(&no_header, body)
}

#[test]
fn edifact_reads_unb_sender() {
    assert_eq!(
        edifact(EDIFACT_UNA.as_bytes()),
        Ok(found("4012345000009", Some("14")))
    );
    let without_una = EDIFACT_UNA.strip_prefix("UNA:+.? '").expect("sample has UNA");
    assert_eq!(
        edifact(without_una.as_bytes()),
        Ok(found("4012345000009", Some("14")))
    );
    assert_eq!(
        edifact(EDIFACT_PLAIN.as_bytes()),
        Ok(found("ACME+1", Some("ZZZ")))
    );
    let escapes = b"UNB+UNOA:2+A??B?:C?'D+R'";
    assert_eq!(edifact(escapes), Ok(found("A?B:C'D", None)));
    let custom = b"\xEF\xBB\xBF \r\nUNA#*,\\ !\nUNB*UNOC#3*SENDER\\*X#01*RECV#01*200401#1000*7!UNH*1!";
    assert_eq!(edifact(custom), Ok(found("SENDER*X", Some("01"))));
    let level_b = b"UNB\x1DUNOB\x1F4\x1DSENDERB\x1F14\x1DRECV\x1CUNH\x1D1\x1C";
    assert_eq!(edifact(level_b), Ok(found("SENDERB", Some("14"))));
    let latin1 = b"UNB+UNOC:3+M\xDCLLER:ZZ+RECV'";
    assert_eq!(edifact(latin1), Ok(found("M\u{dc}LLER", Some("ZZ"))));
    assert_eq!(edifact(b"UNB+UNOC:3+ ACME :+R'"), Ok(found("ACME", None)));
}

#[test]
fn edifact_rejects_truncated_and_foreign_input() {
    for truncated in [
        &b"U"[..],
        b"UNA:+.",
        b"UNA:+.? '",
        b"UNB",
        b"UNB+UNOC:3+40123",
        b"UNA:+.? 'UNB+UNOC:3+ACME?'",
    ] {
        assert!(
            is_malformed(&edifact(truncated)),
            "{:?}",
            String::from_utf8_lossy(truncated)
        );
    }
    assert!(is_malformed(&edifact(b"UNB+UNOC:3'")), "no S002");
    assert!(is_malformed(&edifact(b"UNB+UNOC:3+:14+R'")), "empty sender");
    assert!(
        is_malformed(&edifact(b"UNA::.? 'UNB:UNOC'")),
        "UNA with equal separators"
    );
    assert!(is_malformed(&edifact(b"UNBX+UNOC:3+A+B'")));
    assert!(
        is_malformed(&edifact(b"UNB+UNOA:2+M\xDCLLER+R'")),
        "not UTF-8 outside UNOC"
    );
    assert!(is_not_found(&edifact(b"")));
    assert!(is_not_found(&edifact(b"  \r\n ")));
    assert!(is_not_found(&edifact(X12_850.as_bytes())));
    assert!(is_not_found(&edifact(b"<Order/>")));
    let late = format!("{}{EDIFACT_UNA}", "x".repeat(5000));
    assert!(is_not_found(&edifact(late.as_bytes())));
    let small = Limits {
        edi_prefix: 40,
        ..Limits::default()
    };
    let short = Extractor::compile(&Source::Edifact, small).expect("compiles");
    let result = short.extract(&no_header, EDIFACT_UNA.as_bytes());
    assert!(
        matches!(&result, Err(ExtractError::Malformed(m)) if m.contains("first 40 bytes")),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// X12

fn x12(body: &[u8]) -> Result<Found, ExtractError> {
    compile(Source::X12).extract(&no_header, body)
}

#[test]
fn x12_reads_isa_sender_with_any_separators() {
    assert_eq!(
        X12_850.find('~'),
        Some(105),
        "the sample ISA is the standard 106 bytes"
    );
    assert_eq!(x12(X12_850.as_bytes()), Ok(found("ACMESENDER", Some("ZZ"))));
    let pipes = X12_850.replace('*', "|").replace('~', "\n").replace('>', "^");
    assert_eq!(x12(pipes.as_bytes()), Ok(found("ACMESENDER", Some("ZZ"))));
    let carets = X12_850.replace('*', "^").replace('~', "'").replace('>', ":");
    assert_eq!(x12(carets.as_bytes()), Ok(found("ACMESENDER", Some("ZZ"))));
    let crlf = X12_850.replace('~', "\r\n");
    assert_eq!(
        x12(format!("\u{FEFF}\n{crlf}").as_bytes()),
        Ok(found("ACMESENDER", Some("ZZ")))
    );
    let unpadded = b"ISA*00**00**01*ACME*01*RCV*200401*1000*U*00401*1*0*P*:~GS*PO~";
    assert_eq!(x12(unpadded), Ok(found("ACME", Some("01"))));
}

#[test]
fn x12_rejects_truncated_and_foreign_input() {
    for n in [1, 3, 4, 50, 104, 105] {
        assert!(
            is_malformed(&x12(&X12_850.as_bytes()[..n])),
            "prefix of {n} bytes"
        );
    }
    let fifteen = X12_850.replacen("*U*00401", "*00401", 1);
    assert!(is_malformed(&x12(fifteen.as_bytes())), "15 elements");
    let blank_sender = X12_850.replace("ACMESENDER     ", "               ");
    assert!(is_malformed(&x12(blank_sender.as_bytes())));
    assert!(is_malformed(&x12(b"ISAX00X")), "alphanumeric separator");
    assert!(is_not_found(&x12(b"")));
    assert!(is_not_found(&x12(EDIFACT_UNA.as_bytes())));
    assert!(is_not_found(&x12(b"GS*PO*A*B~")));
    let long = format!("ISA*{}", "0".repeat(5000));
    assert!(is_malformed(&x12(long.as_bytes())));
}

// ---------------------------------------------------------------------------------------------
// IDoc

fn idoc(body: &str) -> Result<Found, ExtractError> {
    compile(Source::Idoc).extract(&no_header, body.as_bytes())
}

#[test]
fn idoc_reads_the_control_record() {
    assert_eq!(idoc(IDOC_ORDERS05), Ok(found("0000100001", Some("KU"))));
    let soap = format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"#,
        IDOC_ORDERS05.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
    );
    assert_eq!(idoc(&soap), Ok(found("0000100001", Some("KU"))));
    let no_type = IDOC_ORDERS05.replace("<SNDPRT>KU</SNDPRT>", "<SNDPRT/>");
    assert_eq!(idoc(&no_type), Ok(found("0000100001", None)));
    let no_partner = IDOC_ORDERS05.replace("<SNDPRN> 0000100001 </SNDPRN>", "");
    assert!(is_not_found(&idoc(&no_partner)));
    let outside = "<ORDERS05><EDI_DC40><SNDPRN>X</SNDPRN></EDI_DC40><IDOC/></ORDERS05>";
    assert!(is_not_found(&idoc(outside)));
    assert!(is_not_found(&idoc(ORDER_DEFAULT_NS)));
}

#[test]
fn idoc_applies_the_xml_safety_rules() {
    assert_eq!(
        idoc(&billion_laughs()),
        Err(ExtractError::Malformed(DOCTYPE_REFUSED.to_owned()))
    );
    assert_eq!(
        idoc(XXE),
        Err(ExtractError::Malformed(DOCTYPE_REFUSED.to_owned()))
    );
    assert!(is_too_large(&idoc(&deep_xml(10_000))));
    assert!(is_malformed(&idoc("")));
    assert!(is_malformed(&idoc("<ORDERS05><IDOC><EDI_DC40><SNDPRN>1")));
    let err = compile(Source::Idoc).extract(&no_header, b"<ORDERS05>\xFF</ORDERS05>");
    assert!(is_malformed(&err));
}

// ---------------------------------------------------------------------------------------------
// No panics on truncated or mutated input

fn all_extractors() -> Vec<Extractor> {
    let mut extractors = vec![
        compile(Source::Edifact),
        compile(Source::X12),
        compile(Source::Idoc),
        compile(Source::JsonPath(
            "$.order.parties[?@.role == 'SU'].ids[0][1]".to_owned(),
        )),
        compile(Source::JsonPath("$..id".to_owned())),
    ];
    for expr in [
        "/p:Order/p:Header/p:SenderId",
        "/p:Order/p:Header/p:SenderId/@scheme",
        "/p:Order/p:Header/p:SenderId/text()",
        "//p:Item[2]/p:Sku",
        "/ORDERS05/IDOC/EDI_DC40/SNDPRN",
    ] {
        extractors.push(xpath(expr));
    }
    extractors
}

fn samples() -> Vec<Vec<u8>> {
    [
        ORDER_DEFAULT_NS,
        ORDER_PREFIXED,
        IDOC_ORDERS05,
        ORDER_JSON,
        EDIFACT_UNA,
        EDIFACT_PLAIN,
        X12_850,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        billion_laughs().into_bytes(),
        "<a>caf\u{e9}&amp;\u{1F600}</a>".as_bytes().to_vec(),
    ])
    .collect()
}

#[test]
fn every_prefix_of_every_sample_is_handled() {
    let extractors = all_extractors();
    for sample in samples() {
        for n in 0..=sample.len() {
            for extractor in &extractors {
                if let Ok(found) = extractor.extract(&no_header, &sample[..n]) {
                    assert!(!found.id.is_empty() && found.id.trim() == found.id);
                }
            }
        }
    }
}

#[test]
fn mutated_samples_never_panic() {
    // xorshift64*: deterministic, no dependency.
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let interesting = b"<>/&;:+?'*~|\"=![]{}\n\r\0\xFF\xC3UNAB ";
    let extractors = all_extractors();
    for sample in samples() {
        for _ in 0..300 {
            let mut body = sample.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = usize::try_from(next() % body.len() as u64).unwrap_or(0);
                let pick = usize::try_from(next() % interesting.len() as u64).unwrap_or(0);
                body[at] = interesting[pick];
            }
            for extractor in &extractors {
                let _ = extractor.extract(&no_header, &body);
            }
        }
    }
}
