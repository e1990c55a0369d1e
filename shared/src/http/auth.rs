//! Bearer-token authentication: HS256 JWTs with the claims `sub`, `tenant`, `role` and `exp`,
//! and the role checks routes demand.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Who may do what: `admin` manages a tenant's programs, codes and payouts; `promoter` is an end
/// user acting on their own data; `service` is the tenant's backend (sign-ups, invoices,
/// verifications).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Promoter,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Promoter => "promoter",
            Role::Service => "service",
        }
    }
}

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

/// Verifies tokens. Built once per cold start.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        TokenVerifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Authenticates an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        let header = authorization
            .ok_or_else(|| Error::Unauthorized("missing Authorization: Bearer <token>".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Error::Unauthorized("Authorization must be 'Bearer <token>'".into()))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                Error::Unauthorized(
                    match error.kind() {
                        ErrorKind::ExpiredSignature => "the token has expired",
                        ErrorKind::InvalidSignature => "the token's signature is invalid",
                        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                        _ => "the token is malformed or its claims are invalid",
                    }
                    .into(),
                )
            })?
            .claims;
        Ok(Principal {
            user_id: checked_identifier(claims.sub, "sub")?,
            tenant: checked_identifier(claims.tenant, "tenant")?,
            role: claims.role,
        })
    }
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

/// Signs a token (the local server's dev tokens, tests, and operators minting service tokens).
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

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_valid_token_yields_the_principal() {
        let token = mint(SECRET, &claims(Role::Admin, 3600));
        let principal = TokenVerifier::new(SECRET)
            .authenticate(Some(&bearer(&token)))
            .unwrap();
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

    #[test]
    fn missing_malformed_expired_and_forged_tokens_are_401() {
        let verifier = TokenVerifier::new(SECRET);
        let expired = mint(SECRET, &claims(Role::Admin, -3600));
        let forged = mint("another-secret-0123456789", &claims(Role::Admin, 3600));
        let cases = [
            None,
            Some("Basic abc".to_owned()),
            Some("Bearer ".to_owned()),
            Some(bearer("not.a.jwt")),
            Some(bearer(&expired)),
            Some(bearer(&forged)),
        ];
        for header in cases {
            let error = verifier.authenticate(header.as_deref()).unwrap_err();
            assert_eq!(error.status(), 401, "{header:?}");
        }
    }

    #[test]
    fn unknown_role_and_key_separator_in_claims_are_refused() {
        let verifier = TokenVerifier::new(SECRET);
        let mut bad = claims(Role::Admin, 3600);
        bad.tenant = "acme#evil".into();
        let token = mint(SECRET, &bad);
        assert_eq!(
            verifier
                .authenticate(Some(&bearer(&token)))
                .unwrap_err()
                .status(),
            401
        );

        let token = raw_token(
            serde_json::json!({"sub": "u", "tenant": "t", "role": "root",
            "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 60}),
        );
        assert_eq!(
            verifier
                .authenticate(Some(&bearer(&token)))
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let token = raw_token(serde_json::json!({"sub": "u", "tenant": "t", "role": "admin"}));
        let error = TokenVerifier::new(SECRET)
            .authenticate(Some(&bearer(&token)))
            .unwrap_err();
        assert_eq!(error.status(), 401);
    }
}
