use super::*;
use crate::secret::Sealer;

fn claims(iss: &str, exp_in: i64) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Claims {
        jti: "j".into(),
        sub: "c".into(),
        client_id: "c".into(),
        cid: "c".into(),
        azp: "c".into(),
        grant_type: "client_credentials".into(),
        scope: vec!["ESBMessaging.send".into()],
        iat: now,
        exp: now + exp_in,
        iss: iss.into(),
        zid: "postern".into(),
        aud: vec!["c".into()],
        ext_attr: ExtAttr {
            enhancer: "XSUAA".into(),
            serviceinstancename: "i".into(),
            key: "k".into(),
        },
        cnf: None,
    }
}

#[test]
fn sign_verify_rotate_and_refuse() {
    let sealer = Sealer::new(&[9; 32], "token keys");
    let iss = "https://p/oauth/token";
    let k1 = new_key(&sealer, 1_000).expect("key");
    let (keys, bad) = TokenKeys::build(std::slice::from_ref(&k1), &sealer, iss, 2_000);
    assert!(bad.is_empty());
    let token = keys.sign(&claims(iss, 600)).expect("sign");
    assert_eq!(keys.verify(&token).expect("valid").client_id, "c");
    assert_eq!(keys.jwks()["keys"][0]["kid"], k1.kid.as_str());

    // Tampered payload, wrong issuer, expired, alg none, garbage.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        b"{\"sub\":\"x\"}",
    );
    assert_eq!(keys.verify(&parts.join(".")), Err(TokenError::Invalid));
    let other_iss = keys.sign(&claims("https://evil/oauth/token", 600)).expect("sign");
    assert_eq!(keys.verify(&other_iss), Err(TokenError::Invalid));
    let expired = keys.sign(&claims(iss, -120)).expect("sign");
    assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
    let none = format!(
        "{}.{}.",
        b64("{\"alg\":\"none\",\"typ\":\"JWT\"}"),
        token.split('.').nth(1).expect("payload")
    );
    assert!(keys.verify(&none).is_err());
    assert_eq!(keys.verify("not.a.jwt"), Err(TokenError::Malformed));

    // A second key signs; the first still verifies until its tokens expire, then disappears.
    let mut k1r = k1.clone();
    k1r.retired_at = Some(3_000);
    let k2 = new_key(&sealer, 3_000).expect("key");
    let (keys2, _) = TokenKeys::build(&[k1r.clone(), k2.clone()], &sealer, iss, 4_000);
    assert_eq!(keys2.current_kid(), Some(k2.kid.as_str()));
    assert!(keys2.verify(&token).is_ok(), "old key still verifies");
    assert_eq!(keys2.jwks()["keys"].as_array().map(Vec::len), Some(2));
    let later = 3_000 + (MAX_VALIDITY_SECS + 31) * 1000;
    let (keys3, _) = TokenKeys::build(&[k1r, k2], &sealer, iss, later);
    assert_eq!(keys3.verify(&token), Err(TokenError::UnknownKey));

    // The wrong master key cannot sign.
    let (wrong, bad) = TokenKeys::build(&[k1], &Sealer::new(&[8; 32], "token keys"), iss, 2_000);
    assert_eq!(bad.len(), 1);
    assert!(wrong.sign(&claims(iss, 60)).is_err());
}

#[test]
fn tokens_are_standard_compact_jws() {
    let sealer = Sealer::new(&[9; 32], "token keys");
    let iss = "https://p/oauth/token";
    let k1 = new_key(&sealer, 1_000).expect("key");
    let (keys, _) = TokenKeys::build(std::slice::from_ref(&k1), &sealer, iss, 2_000);
    let c = claims(iss, 600);
    let token = keys.sign(&c).expect("sign");

    // The header is exactly the one JOSE header every token carries.
    let header = token.split('.').next().expect("header");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
            .expect("base64url header"),
    )
    .expect("JSON header");
    assert_eq!(
        header,
        serde_json::json!({ "typ": "JWT", "alg": "EdDSA", "kid": k1.kid })
    );

    // An independent verifier, given only the public key, accepts it and reads the same claims.
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[iss]);
    validation.set_audience(&["c"]);
    let decoded =
        jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_ed_der(&k1.public_key), &validation)
            .expect("verifies with the public key alone");
    assert_eq!(decoded.claims, c);
    assert_eq!(decoded.header.kid.as_deref(), Some(k1.kid.as_str()));

    // Another key's public half does not verify it.
    let k2 = new_key(&sealer, 1_000).expect("key");
    assert!(
        jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_ed_der(&k2.public_key), &validation)
            .is_err()
    );
}

#[test]
fn a_key_whose_halves_disagree_does_not_sign() {
    let sealer = Sealer::new(&[9; 32], "token keys");
    let iss = "https://p/oauth/token";
    let mut k1 = new_key(&sealer, 1_000).expect("key");
    let k2 = new_key(&sealer, 1_000).expect("key");
    k1.public_key = k2.public_key.clone();
    let (keys, bad) = TokenKeys::build(std::slice::from_ref(&k1), &sealer, iss, 2_000);
    assert_eq!(bad, vec![k1.kid.clone()]);
    assert_eq!(keys.current_kid(), None);
    assert!(keys.sign(&claims(iss, 60)).is_err());
}

fn b64(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s)
}
