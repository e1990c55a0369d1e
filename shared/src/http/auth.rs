//! Bearer tokens the engine signs: HS256 JWTs with the claims `sub`, `tenant`, `role` and `exp`
//! (promoter sessions, and tokens minted with the engine's key), verified against a keyring of the
//! current signing key and the previous one (each named by a `kid`, so a rotation logs no one
//! out); and the role checks routes demand. API keys and the operator key are
//! [`super::credentials`].

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use crate::domain::tenant::Role;

/// The claims of a bearer token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: i64,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub tenant: String,
    pub role: Role,
}

impl Principal {
    /// The caller, if their role is `role`; 403 otherwise.
    pub fn require(self, role: Role) -> Result<Self> {
        self.require_any(&[role])
    }

    /// The caller, if their role is one of `roles`; 403 otherwise.
    pub fn require_any(self, roles: &[Role]) -> Result<Self> {
        if roles.contains(&self.role) {
            Ok(self)
        } else {
            let allowed: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
            Err(Error::Forbidden(format!(
                "this route needs the role {}; the token has {}",
                allowed.join(" or "),
                self.role.as_str()
            )))
        }
    }
}

/// The `kid` of a signing secret: a short digest of it, so tokens name their key without any
/// configuration beyond the secret itself.
pub fn kid_of(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(secret.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("k{hex}")
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    fn new(secret: &str) -> Self {
        SigningKey {
            kid: kid_of(secret),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }
}

/// Signs and verifies the engine's tokens. Built once per cold start from `JWT_SECRET` (the
/// current key: it signs) and `JWT_PREVIOUS_SECRET` (still verifies, while tokens it signed
/// live out their hours).
#[derive(Clone)]
pub struct Keyring {
    keys: std::sync::Arc<[SigningKey]>,
    validation: Validation,
}

impl Keyring {
    pub fn new(current: &str, previous: Option<&str>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let keys: Vec<SigningKey> = std::iter::once(current)
            .chain(previous)
            .map(SigningKey::new)
            .collect();
        Keyring {
            keys: keys.into(),
            validation,
        }
    }

    /// The current key's id.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// A token of `claims`, signed with the current key and naming it in its `kid`.
    pub fn sign(&self, claims: &Claims) -> String {
        let key = &self.keys[0];
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .expect("HS256 signing of serialisable claims cannot fail")
    }

    /// The principal of a token: verified with the key its `kid` names (a token without one is
    /// tried with each key).
    pub fn verify(&self, token: &str) -> Result<Principal> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::Unauthorized("the token is malformed".into()))?
            .kid;
        let candidates: Vec<&SigningKey> = match &kid {
            Some(kid) => self.keys.iter().filter(|key| &key.kid == kid).collect(),
            None => self.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(Error::Unauthorized(
                "the token was signed with a key the engine no longer accepts".into(),
            ));
        }
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation) {
                Ok(data) => {
                    let claims = data.claims;
                    return Ok(Principal {
                        user_id: checked_identifier(claims.sub, "sub")?,
                        tenant: checked_identifier(claims.tenant, "tenant")?,
                        role: claims.role,
                    });
                }
                Err(error) => last = Some(error),
            }
        }
        use jsonwebtoken::errors::ErrorKind;
        Err(Error::Unauthorized(
            match last.as_ref().map(|error| error.kind()) {
                Some(ErrorKind::ExpiredSignature) => "the token has expired",
                Some(ErrorKind::InvalidSignature) => "the token's signature is invalid",
                Some(ErrorKind::MissingRequiredClaim(_)) => "the token lacks a required claim",
                _ => "the token is malformed or its claims are invalid",
            }
            .into(),
        ))
    }
}

/// The bearer credential of an `Authorization` header value.
pub fn bearer(authorization: Option<&str>) -> Result<&str> {
    let header = authorization.ok_or_else(|| {
        Error::Unauthorized("missing Authorization: Bearer <API key or token>".into())
    })?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Error::Unauthorized("Authorization must be 'Bearer <API key or token>'".into())
        })
}

/// Identifiers end up inside DynamoDB keys: they are non-empty, at most 128 bytes, and free of
/// the key separator `#` and of control characters.
fn checked_identifier(value: String, claim: &str) -> Result<String> {
    if crate::id::is_identifier(&value) {
        Ok(value)
    } else {
        Err(Error::Unauthorized(format!(
            "the token's {claim} claim {}",
            crate::id::IDENTIFIER_RULE
        )))
    }
}

/// Signs a token without a `kid` (tests, and tokens minted by hand with the engine's secret):
/// verified with each key of the keyring.
pub fn mint(secret: &str, claims: &Claims) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing of serialisable claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "unit-test-secret-0123456789";

    fn claims(role: Role, exp_offset: i64) -> Claims {
        Claims {
            sub: "user-1".into(),
            tenant: "acme".into(),
            role,
            exp: time::OffsetDateTime::now_utc().unix_timestamp() + exp_offset,
        }
    }

    /// A correctly signed token with arbitrary claims.
    fn raw_token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn verify(keyring: &Keyring, header: Option<&str>) -> Result<Principal> {
        keyring.verify(bearer(header)?)
    }

    fn with_bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_valid_token_yields_the_principal() {
        let keyring = Keyring::new(SECRET, None);
        for token in [
            mint(SECRET, &claims(Role::Admin, 3600)),
            keyring.sign(&claims(Role::Admin, 3600)),
        ] {
            let principal = verify(&keyring, Some(&with_bearer(&token))).unwrap();
            assert_eq!(
                principal,
                Principal {
                    user_id: "user-1".into(),
                    tenant: "acme".into(),
                    role: Role::Admin
                }
            );
            assert!(principal.clone().require(Role::Admin).is_ok());
            let forbidden = principal.require(Role::Service).unwrap_err();
            assert_eq!(forbidden.status(), 403);
        }
    }

    #[test]
    fn missing_malformed_expired_and_forged_tokens_are_401() {
        let keyring = Keyring::new(SECRET, None);
        let expired = mint(SECRET, &claims(Role::Admin, -3600));
        let forged = mint("another-secret-0123456789", &claims(Role::Admin, 3600));
        let cases = [
            None,
            Some("Basic abc".to_owned()),
            Some("Bearer ".to_owned()),
            Some(with_bearer("not.a.jwt")),
            Some(with_bearer(&expired)),
            Some(with_bearer(&forged)),
        ];
        for header in cases {
            let error = verify(&keyring, header.as_deref()).unwrap_err();
            assert_eq!(error.status(), 401, "{header:?}");
        }
    }

    #[test]
    fn a_rotation_keeps_the_previous_keys_tokens_and_drops_them_after() {
        let old = Keyring::new("first-secret-0123456789", None);
        let token = old.sign(&claims(Role::Promoter, 3600));
        let rotated = Keyring::new("second-secret-0123456789", Some("first-secret-0123456789"));
        assert_ne!(old.current_kid(), rotated.current_kid());
        assert!(
            verify(&rotated, Some(&with_bearer(&token))).is_ok(),
            "old kid verifies"
        );
        let fresh = rotated.sign(&claims(Role::Promoter, 3600));
        let header = jsonwebtoken::decode_header(&fresh).unwrap();
        assert_eq!(header.kid.as_deref(), Some(rotated.current_kid()));
        let done = Keyring::new("second-secret-0123456789", None);
        let error = verify(&done, Some(&with_bearer(&token))).unwrap_err();
        assert!(error.to_string().contains("no longer accepts"), "{error}");
        assert!(verify(&done, Some(&with_bearer(&fresh))).is_ok());
        // A token naming the current kid but signed with another secret is forged.
        let mut forged_header = Header::new(Algorithm::HS256);
        forged_header.kid = Some(done.current_kid().to_owned());
        let forged = jsonwebtoken::encode(
            &forged_header,
            &claims(Role::Admin, 3600),
            &EncodingKey::from_secret(b"attacker-secret-0123456789"),
        )
        .unwrap();
        assert_eq!(
            verify(&done, Some(&with_bearer(&forged)))
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn unknown_role_and_key_separator_in_claims_are_refused() {
        let keyring = Keyring::new(SECRET, None);
        let mut bad = claims(Role::Admin, 3600);
        bad.tenant = "acme#evil".into();
        let token = mint(SECRET, &bad);
        assert_eq!(
            verify(&keyring, Some(&with_bearer(&token)))
                .unwrap_err()
                .status(),
            401
        );
        let token = raw_token(
            serde_json::json!({"sub": "u", "tenant": "t", "role": "root",
            "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 60}),
        );
        assert_eq!(
            verify(&keyring, Some(&with_bearer(&token)))
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let token = raw_token(serde_json::json!({"sub": "u", "tenant": "t", "role": "admin"}));
        let error = verify(&Keyring::new(SECRET, None), Some(&with_bearer(&token))).unwrap_err();
        assert_eq!(error.status(), 401);
    }
}
