//! `identity.mode = "jwt"`: HS256 from a secret file, RS256/ES256 from a JWKS file or URL.
//! Valid tokens log in; expired, not-yet-valid, forged, tampered, `alg: none`, wrong-issuer
//! and key-confusion tokens do not; an unknown `kid` refetches the JWKS at a bounded rate; a
//! JWKS URL that never answered is `identity_unavailable`.

use crate::common::*;
use crate::login_common::*;
use base64::Engine;
use http::Response;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "an-hs256-secret-that-is-long-enough-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, &claims, key).unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({ "sub": sub, "exp": now() + 300, "iss": "https://sso.example.com" })
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// An ES256 or RS256 key pair: the signing key and its public JWK (with `kid`).
fn keypair(alg: Algorithm, kid: &str) -> (EncodingKey, Jwk) {
    let (rc_alg, pem_to_key): (&rcgen::SignatureAlgorithm, fn(&[u8]) -> EncodingKey) = match alg {
        Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, |p| {
            EncodingKey::from_ec_pem(p).unwrap()
        }),
        _ => (&rcgen::PKCS_RSA_SHA256, |p| {
            EncodingKey::from_rsa_pem(p).unwrap()
        }),
    };
    let kp = rcgen::KeyPair::generate_for(rc_alg).unwrap();
    let enc = pem_to_key(kp.serialize_pem().as_bytes());
    let mut jwk = Jwk::from_encoding_key(&enc, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    (enc, jwk)
}

fn jwks(keys: &[&Jwk]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| (*k).clone()).collect(),
    })
    .unwrap()
}

#[tokio::test]
async fn hs256_cookie_tokens_are_verified_and_every_bad_token_is_refused() {
    let dir = TempDir::new("jwt");
    std::fs::write(dir.path("hs"), format!("{SECRET}\n")).unwrap();
    let identity = format!(
        "mode = \"jwt\"\ncookie = \"auth\"\nclaim = \"sub\"\nissuer = \"https://sso.example.com\"\nhs256_secret_file = \"{}\"",
        dir.path("hs").display()
    );
    let env = Env::start(Opts {
        identity: &identity,
        ..Opts::default()
    })
    .await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let mut c = env.side.h1().await;
    let good = sign(Algorithm::HS256, None, &key, claims("alice"));
    let (s, _, v) = login(&mut c, &[("cookie", &format!("x=1; auth={good}"))]).await;
    assert_token(s, &v);

    let other = EncodingKey::from_secret(b"another-secret-of-sufficient-length-000000");
    let expired = json!({ "sub": "alice", "exp": now() - 120, "iss": "https://sso.example.com" });
    let not_yet = json!({ "sub": "alice", "exp": now() + 600, "nbf": now() + 300, "iss": "https://sso.example.com" });
    let no_exp = json!({ "sub": "alice", "iss": "https://sso.example.com" });
    let wrong_iss = json!({ "sub": "alice", "exp": now() + 300, "iss": "https://evil.example" });
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims("bob")), parts[2]);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("bob"))
    );
    let alg_none_upper = format!("{}.{}.", b64(&json!({"alg": "None"})), b64(&claims("bob")));
    let bad = [
        (
            "forged",
            sign(Algorithm::HS256, None, &other, claims("bob")),
        ),
        ("expired", sign(Algorithm::HS256, None, &key, expired)),
        (
            "nbf in the future",
            sign(Algorithm::HS256, None, &key, not_yet),
        ),
        ("no exp", sign(Algorithm::HS256, None, &key, no_exp)),
        (
            "wrong issuer",
            sign(Algorithm::HS256, None, &key, wrong_iss),
        ),
        (
            "HS384 with the same secret",
            sign(Algorithm::HS384, None, &key, claims("bob")),
        ),
        ("tampered payload", tampered),
        ("alg none", alg_none),
        ("alg None", alg_none_upper),
        ("garbage", "not.a.jwt".into()),
    ];
    for (what, token) in bad {
        let (s, _, v) = login(&mut c, &[("cookie", &format!("auth={token}"))]).await;
        assert_eq!(s, 401, "{what} was accepted: {v}");
        assert_eq!(v["error"], "unauthenticated");
    }
    assert_eq!(env.issued(ALICE_SEAT), 1);
    assert_eq!(env.issued(BOB_SEAT), 0, "no bad token reached CCC");
}

#[tokio::test]
async fn jwks_file_keys_are_pinned_to_their_algorithm() {
    let (es_key, es_jwk) = keypair(Algorithm::ES256, "es-1");
    let (rs_key, rs_jwk) = keypair(Algorithm::RS256, "rs-1");
    let dir = TempDir::new("jwks");
    std::fs::write(dir.path("jwks.json"), jwks(&[&es_jwk, &rs_jwk])).unwrap();
    let identity = format!(
        "mode = \"jwt\"\nheader = \"Authorization\"\naudience = \"crm\"\njwks_file = \"{}\"",
        dir.path("jwks.json").display()
    );
    let env = Env::start(Opts {
        identity: &identity,
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h2().await;
    let with_aud = |sub: &str| json!({ "sub": sub, "exp": now() + 300, "aud": "crm" });
    for (alg, kid, key) in [
        (Algorithm::ES256, "es-1", &es_key),
        (Algorithm::RS256, "rs-1", &rs_key),
    ] {
        let t = sign(alg, Some(kid), key, with_aud("alice"));
        let (s, _, v) = login(&mut c, &[("authorization", &format!("Bearer {t}"))]).await;
        assert_token(s, &v);
    }
    // Key confusion: an HS256 token whose secret is the RSA public key's text.
    let rs_public = serde_json::to_string(&rs_jwk).unwrap();
    let confused = sign(
        Algorithm::HS256,
        Some("rs-1"),
        &EncodingKey::from_secret(rs_public.as_bytes()),
        with_aud("bob"),
    );
    // An ES256 token naming the RSA key's kid, and a token for another audience.
    let wrong_kid = sign(Algorithm::ES256, Some("rs-1"), &es_key, with_aud("bob"));
    let wrong_aud = sign(
        Algorithm::ES256,
        Some("es-1"),
        &es_key,
        json!({ "sub": "bob", "exp": now() + 300, "aud": "other" }),
    );
    for (what, t) in [
        ("confused", confused),
        ("wrong kid", wrong_kid),
        ("wrong aud", wrong_aud),
    ] {
        let (s, _, v) = login(&mut c, &[("authorization", &format!("Bearer {t}"))]).await;
        assert_eq!(s, 401, "{what}: {v}");
    }
    assert_eq!(env.issued(ALICE_SEAT), 2);
    assert_eq!(env.issued(BOB_SEAT), 0);
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_url_at_a_bounded_rate() {
    let (k1, j1) = keypair(Algorithm::ES256, "k1");
    let (k2, j2) = keypair(Algorithm::ES256, "k2");
    let (k3, _) = keypair(Algorithm::ES256, "k3");
    let served = Arc::new(Mutex::new(jwks(&[&j1])));
    let s2 = served.clone();
    let idp = Upstream::start(handler(move |_s: Seen| {
        let body = s2.lock().unwrap().clone();
        async move {
            Response::builder()
                .header("content-type", "application/json")
                .body(full(body))
                .unwrap()
        }
    }))
    .await;
    let identity = format!(
        "mode = \"jwt\"\ncookie = \"id_token\"\njwks_url = \"http://{}/jwks.json\"",
        idp.addr
    );
    let env = Env::start(Opts {
        identity: &identity,
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let t1 = sign(Algorithm::ES256, Some("k1"), &k1, claims("alice"));
    let (s, _, v) = login(&mut c, &[("cookie", &format!("id_token={t1}"))]).await;
    assert_token(s, &v);
    let fetches_at_start = idp.count();
    assert_eq!(fetches_at_start, 1);
    // The IdP rotates to k2: the first k2 token makes the sidecar fetch again.
    *served.lock().unwrap() = jwks(&[&j1, &j2]);
    let t2 = sign(Algorithm::ES256, Some("k2"), &k2, claims("bob"));
    let (s, _, v) = login(&mut c, &[("cookie", &format!("id_token={t2}"))]).await;
    assert_token(s, &v);
    assert_eq!(idp.count(), 2);
    // Tokens with a kid nobody publishes cannot make it fetch on every request.
    for _ in 0..5 {
        let t3 = sign(Algorithm::ES256, Some("k3"), &k3, claims("alice"));
        let (s, _, _) = login(&mut c, &[("cookie", &format!("id_token={t3}"))]).await;
        assert_eq!(s, 401);
    }
    assert_eq!(idp.count(), 2, "refetch is rate-bounded (10 s)");
}

#[tokio::test]
async fn a_jwks_url_that_never_answered_is_identity_unavailable() {
    let idp = Upstream::start(handler(|_s: Seen| async move {
        Response::builder().status(503).body(full("down")).unwrap()
    }))
    .await;
    let (k1, _) = keypair(Algorithm::ES256, "k1");
    let identity = format!(
        "mode = \"jwt\"\ncookie = \"id_token\"\njwks_url = \"http://{}/jwks.json\"",
        idp.addr
    );
    let env = Env::start(Opts {
        identity: &identity,
        ..Opts::default()
    })
    .await;
    let mut c = env.side.h1().await;
    let t1 = sign(Algorithm::ES256, Some("k1"), &k1, claims("alice"));
    let (s, h, v) = login(&mut c, &[("cookie", &format!("id_token={t1}"))]).await;
    assert_error(s, &v, 503, "identity_unavailable");
    assert!(h.contains_key("retry-after"));
}
