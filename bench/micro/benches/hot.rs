//! Micro-benchmarks of the functions on Postern's request path. Run with
//! `cargo bench -p bench-micro` (or `./bench/run --micro`).

#![allow(missing_docs)]

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use postern_auth::Authenticator;
use postern_auth::basic::parse_basic;
use postern_auth::password::CachedVerifier;
use postern_auth::secret::{Sealer, SecretHasher};
use postern_auth::token::{Claims, ExtAttr, TokenKeys, new_key};
use postern_core::ids::{InstanceName, KeyName, RoleName};
use postern_core::model::{KeyType, Plan, ServiceInstance, ServiceKey};
use postern_core::partner::{AlternativePartner, Audit, AuthorizedUser};
use postern_core::snapshot::Snapshot;
use postern_partner::Directory;
use postern_partner::extract::{Extractor, Limits, Source};

fn main() {
    divan::main();
}

/// Polls a future that completes without waiting (the paths measured here never wait).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

const CLIENTS: usize = 10_000;

struct Security {
    snapshot: Snapshot,
    authn: Authenticator,
    header: Vec<u8>,
}

fn security() -> Security {
    let hasher = SecretHasher::new(&[7; 32], "bench");
    let role = RoleName::parse("ESBMessaging.send").expect("role");
    let mut instances = Vec::with_capacity(CLIENTS);
    let mut keys = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let name = InstanceName::parse(&format!("inst-{i}")).expect("name");
        instances.push(ServiceInstance {
            name: name.clone(),
            plan: Plan::IntegrationFlow,
            client_id: format!("sb-{i:08}!b1|it-rt-postern!b1"),
            roles: vec![role.clone()],
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            token_validity: 3600,
            rate_limit: None,
            created_at: 0,
            created_by: "bench".into(),
        });
        keys.push(ServiceKey {
            instance: name,
            name: KeyName::parse("k").expect("key"),
            key_type: KeyType::ClientSecret,
            secret_hash: hasher.hash(&[format!("secret-{i}").as_bytes()]).to_vec(),
            certificate: None,
            expires_at: None,
            created_at: 0,
            created_by: "bench".into(),
        });
    }
    let snapshot = Snapshot::build(&instances, &keys, &[], &[]);
    let header = format!(
        "Basic {}",
        base64_encode(format!("sb-{:08}!b1|it-rt-postern!b1:secret-{}", CLIENTS / 2, CLIENTS / 2).as_bytes())
    )
    .into_bytes();
    Security {
        snapshot,
        authn: Authenticator::new(hasher, CachedVerifier::new(SecretHasher::new(&[8; 32], "pw"), 16)),
        header,
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[divan::bench]
fn basic_header_parse(bencher: divan::Bencher) {
    let s = security();
    bencher.bench(|| parse_basic(black_box(&s.header)).is_ok());
}

#[divan::bench]
fn client_secret_hmac_verify(bencher: divan::Bencher) {
    let hasher = SecretHasher::new(&[7; 32], "bench");
    let expected = hasher.hash(&[b"secret-1"]);
    bencher.bench(|| hasher.verify(black_box(b"secret-1"), &expected));
}

#[divan::bench]
fn authenticate_basic_service_key(bencher: divan::Bencher) {
    let s = security();
    let tokens = TokenKeys::default();
    bencher.bench(|| {
        ready(
            s.authn
                .authenticate(&s.snapshot, &tokens, Some(black_box(&s.header)), None),
        )
        .is_ok()
    });
}

#[divan::bench]
fn snapshot_client_lookup(bencher: divan::Bencher) {
    let s = security();
    let id = format!("sb-{:08}!b1|it-rt-postern!b1", CLIENTS / 3);
    bencher.bench(|| s.snapshot.client(black_box(&id)).is_some());
}

fn token_keys() -> (TokenKeys, String, Claims) {
    let sealer = Sealer::new(&[9; 32], "bench");
    let key = new_key(&sealer, 1_000).expect("key");
    let (keys, _) = TokenKeys::build(&[key], &sealer, "https://bench/oauth/token", 2_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = Claims {
        jti: "j".into(),
        sub: "c".into(),
        client_id: "c".into(),
        cid: "c".into(),
        azp: "c".into(),
        grant_type: "client_credentials".into(),
        scope: vec!["ESBMessaging.send".into()],
        iat: now,
        exp: now + 3600,
        iss: "https://bench/oauth/token".into(),
        zid: "postern".into(),
        aud: vec!["c".into()],
        ext_attr: ExtAttr {
            enhancer: "XSUAA".into(),
            serviceinstancename: "i".into(),
            key: "k".into(),
        },
        cnf: None,
    };
    let token = keys.sign(&claims).expect("sign");
    (keys, token, claims)
}

/// Signature verification without the authenticator's token cache.
#[divan::bench]
fn jwt_verify_eddsa(bencher: divan::Bencher) {
    let (keys, token, _) = token_keys();
    bencher.bench(|| keys.verify(black_box(&token)).is_ok());
}

/// Signing one access token (serialising the claims, Ed25519, base64url): the token
/// endpoint's floor.
#[divan::bench]
fn jwt_sign_eddsa(bencher: divan::Bencher) {
    let (keys, _, claims) = token_keys();
    bencher.bench(|| keys.sign(black_box(&claims)).map(|t| t.len()));
}

fn directory(n: usize) -> Directory {
    let audit = Audit {
        created_by: "b".into(),
        created_at: 0,
        modified_by: "b".into(),
        modified_at: 0,
    };
    let alts: Vec<AlternativePartner> = (0..n)
        .map(|i| AlternativePartner {
            agency: "016".into(),
            scheme: "DUNS".into(),
            id: format!("{i:09}"),
            pid: format!("P{i}"),
            audit: audit.clone(),
        })
        .collect();
    let users: Vec<AuthorizedUser> = (0..n / 10)
        .map(|i| AuthorizedUser {
            user: format!("user-{i}"),
            pid: format!("P{i}"),
            audit: audit.clone(),
        })
        .collect();
    Directory::build(&alts, &users, &[]).expect("the directory fits")
}

#[divan::bench(args = [10, 1_000_000])]
fn directory_alternative_and_user_lookup(bencher: divan::Bencher, n: usize) {
    let d = directory(n);
    let id = format!("{:09}", n / 2);
    let user = format!("user-{}", n / 20);
    bencher.bench(|| {
        (
            d.partner_of_alternative("016", "DUNS", black_box(&id)),
            d.partner_of_user(black_box(&user)),
        )
            .0
            .is_some()
    });
}

/// One Partner Directory write as the server applies it: a new snapshot of the directory with
/// one alternative partner moved (the old snapshot stays readable).
#[divan::bench(args = [10, 1_000_000])]
fn directory_apply_one_change(bencher: divan::Bencher, n: usize) {
    let mut d = directory(n);
    let mut i = 0usize;
    bencher.bench_local(|| {
        i += 1;
        let mut next = d.clone();
        next.apply(&[postern_core::partner::PartnerDelta::Alternative {
            agency: "016".into(),
            scheme: "DUNS".into(),
            id: format!("{:09}", i % n.max(1)),
            pid: Some(format!("Q{i}")),
        }]);
        d = next;
    });
}

fn order_10k() -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><o:Order xmlns:o=\"urn:example:order\"><o:Header><o:SenderId>123456789</o:SenderId></o:Header>",
    );
    let mut i = 0;
    while s.len() < 10 * 1024 {
        i += 1;
        s.push_str(&format!(
            "<o:Item><o:Line>{i}</o:Line><o:Sku>SKU-{i:05}</o:Sku><o:Qty>{i}</o:Qty></o:Item>"
        ));
    }
    s.push_str("</o:Order>");
    s
}

fn extract(bencher: divan::Bencher, source: Source, body: &[u8]) {
    let e = Extractor::compile(&source, Limits::default()).expect("compiles");
    let no_header = |_: &str| None;
    assert!(e.extract(&no_header, body).is_ok());
    bencher.bench(|| e.extract(&no_header, black_box(body)).is_ok());
}

fn ns() -> Vec<(String, String)> {
    vec![("o".into(), "urn:example:order".into())]
}

#[divan::bench]
fn extract_xpath_streaming_10k(bencher: divan::Bencher) {
    let body = order_10k();
    extract(
        bencher,
        Source::XPath {
            expr: "/o:Order/o:Header/o:SenderId".into(),
            namespaces: ns(),
        },
        body.as_bytes(),
    );
}

#[divan::bench]
fn extract_xpath_dom_10k(bencher: divan::Bencher) {
    let body = order_10k();
    extract(
        bencher,
        Source::XPath {
            expr: "//o:Header/o:SenderId[1]".into(),
            namespaces: ns(),
        },
        body.as_bytes(),
    );
}

#[divan::bench]
fn extract_jsonpath(bencher: divan::Bencher) {
    let body = br#"{"order":{"header":{"sender":"123456789"},"items":[{"n":1},{"n":2},{"n":3}]}}"#;
    extract(bencher, Source::JsonPath("$.order.header.sender".into()), body);
}

#[divan::bench]
fn extract_edifact_unb(bencher: divan::Bencher) {
    let body = b"UNA:+.? 'UNB+UNOC:3+4000001000002:14+5000000000003:14+200101:1000+REF1'UNH+1+ORDERS:D:96A:UN'BGM+220+PO1+9'";
    extract(bencher, Source::Edifact, body);
}

#[divan::bench]
fn extract_x12_isa(bencher: divan::Bencher) {
    let body = b"ISA*00*          *00*          *ZZ*ACMESENDER     *ZZ*RECEIVER       *210101*1200*U*00401*000000001*0*P*>~GS*PO*A*B*20210101*1200*1*X*004010~";
    extract(bencher, Source::X12, body);
}
