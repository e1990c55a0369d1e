//! The one error type of the service: every variant has a stable `code`, an HTTP status and a
//! message that is safe to show. Internal failures are logged with their context and answered as
//! a generic 500; their details never reach a client.

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 400: the request is malformed or a field is invalid; `field` names it (a JSON path such as
    /// `rewards[0].amount`, or `body` when the body as a whole is unreadable).
    #[error("{field}: {message}")]
    InvalidRequest { field: String, message: String },
    /// 400: identifiers that name different users (seed 004).
    #[error("{0}")]
    MultipleParameterMismatch(String),
    /// 401: no token, a bad signature, an expired or malformed token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: a valid token whose role may not use this route.
    #[error("{0}")]
    Forbidden(String),
    /// 403: the credential is valid but its tenant is suspended (its data is kept).
    #[error("{0}")]
    TenantSuspended(String),
    /// 404: nothing with this id in the caller's tenant (also another tenant's data).
    #[error("{0}")]
    NotFound(String),
    /// 404: no referral relation between the named users (seed 004).
    #[error("{0}")]
    ReferralRelationNotFound(String),
    /// 404: the program (seed 004's campaign) named in a body does not exist in the tenant.
    #[error("{0}")]
    CampaignNotFound(String),
    /// 404: an identifier of a body names no user (seed 004).
    #[error("{0}")]
    UserNotFound(String),
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: a uniqueness rule or a concurrent change prevents the write.
    #[error("{0}")]
    Conflict(String),
    /// 409: the user is already referred in this program.
    #[error("{0}")]
    AlreadyReferred(String),
    /// 409: the relation was already completed (seed 004).
    #[error("{0}")]
    ReferralRelationAlreadyRedeemed(String),
    /// 409: an event id used before with another payload (Stripe's rule for idempotency keys).
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// 413: the body is larger than [`crate::http::MAX_BODY_BYTES`].
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// 422 business-rule refusals.
    #[error("{0}")]
    MaxReferralsReached(String),
    #[error("{0}")]
    ProgramInactive(String),
    #[error("{0}")]
    ProgramExpired(String),
    #[error("{0}")]
    CodeInactive(String),
    #[error("{0}")]
    SelfReferral(String),
    #[error("{0}")]
    BelowMinWithdrawalBalance(String),
    #[error("{0}")]
    PayoutMethodMissing(String),
    /// The promoter is suspended: no withdrawals.
    #[error("{0}")]
    PromoterSuspended(String),
    /// 503: a transient failure (DynamoDB throttling or an outage, the engine's own contention
    /// past its retry deadline): nothing was changed that a retry would repeat; answered with
    /// `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a failure of ours or of a dependency. The text is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON envelope every error is answered with:
/// `{"error": {"code": "...", "message": "...", "field": "..."}}` (`field` only for 400s that
/// concern one field).
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub error: EnvelopeBody<'a>,
}

#[derive(Debug, Serialize)]
pub struct EnvelopeBody<'a> {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl Error {
    /// Every code this service answers with (the README and `openapi.yaml` list the same).
    pub const CODES: &'static [&'static str] = &[
        "invalid_request",
        "multiple_parameter_mismatch",
        "unauthorized",
        "forbidden",
        "tenant_suspended",
        "not_found",
        "referral_relation_not_found",
        "campaign_not_found",
        "user_not_found",
        "method_not_allowed",
        "conflict",
        "already_referred",
        "referral_relation_already_redeemed",
        "idempotency_key_reused",
        "payload_too_large",
        "max_referrals_reached",
        "program_inactive",
        "program_expired",
        "code_inactive",
        "self_referral",
        "below_min_withdrawal_balance",
        "payout_method_missing",
        "promoter_suspended",
        "unavailable",
        "internal_error",
    ];

    /// Seconds a client should wait before retrying a 503 (the `Retry-After` header).
    pub const RETRY_AFTER_SECONDS: u32 = 1;

    /// A 400 naming the offending field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A 503: transient, retry after [`Error::RETRY_AFTER_SECONDS`].
    pub fn unavailable(context: impl std::fmt::Display) -> Self {
        Error::Unavailable(context.to_string())
    }

    pub fn internal(context: impl std::fmt::Display) -> Self {
        Error::Internal(context.to_string())
    }

    /// The stable, documented code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::MultipleParameterMismatch(_) => "multiple_parameter_mismatch",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::TenantSuspended(_) => "tenant_suspended",
            Error::NotFound(_) => "not_found",
            Error::ReferralRelationNotFound(_) => "referral_relation_not_found",
            Error::CampaignNotFound(_) => "campaign_not_found",
            Error::UserNotFound(_) => "user_not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::AlreadyReferred(_) => "already_referred",
            Error::ReferralRelationAlreadyRedeemed(_) => "referral_relation_already_redeemed",
            Error::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::MaxReferralsReached(_) => "max_referrals_reached",
            Error::ProgramInactive(_) => "program_inactive",
            Error::ProgramExpired(_) => "program_expired",
            Error::CodeInactive(_) => "code_inactive",
            Error::SelfReferral(_) => "self_referral",
            Error::BelowMinWithdrawalBalance(_) => "below_min_withdrawal_balance",
            Error::PayoutMethodMissing(_) => "payout_method_missing",
            Error::PromoterSuspended(_) => "promoter_suspended",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidRequest { .. } | Error::MultipleParameterMismatch(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) | Error::TenantSuspended(_) => 403,
            Error::NotFound(_)
            | Error::ReferralRelationNotFound(_)
            | Error::CampaignNotFound(_)
            | Error::UserNotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::Conflict(_)
            | Error::AlreadyReferred(_)
            | Error::ReferralRelationAlreadyRedeemed(_)
            | Error::IdempotencyKeyReused(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::MaxReferralsReached(_)
            | Error::ProgramInactive(_)
            | Error::ProgramExpired(_)
            | Error::CodeInactive(_)
            | Error::SelfReferral(_)
            | Error::BelowMinWithdrawalBalance(_)
            | Error::PayoutMethodMissing(_)
            | Error::PromoterSuspended(_) => 422,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// The message a client may see: for a 500 a generic sentence, otherwise the error's text.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal error; the incident was logged".to_owned(),
            Error::Unavailable(_) => format!(
                "the service is busy; retry in {} second(s)",
                Error::RETRY_AFTER_SECONDS
            ),
            Error::InvalidRequest { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub fn envelope(&self) -> Envelope<'_> {
        Envelope {
            error: EnvelopeBody {
                code: self.code(),
                message: self.public_message(),
                field: match self {
                    Error::InvalidRequest { field, .. } => Some(field.as_str()),
                    _ => None,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_code_and_status_in_its_class() {
        let cases = [
            (
                Error::invalid("name", "is required"),
                "invalid_request",
                400,
            ),
            (
                Error::MultipleParameterMismatch("x".into()),
                "multiple_parameter_mismatch",
                400,
            ),
            (Error::Unauthorized("x".into()), "unauthorized", 401),
            (Error::Forbidden("x".into()), "forbidden", 403),
            (Error::TenantSuspended("x".into()), "tenant_suspended", 403),
            (Error::NotFound("x".into()), "not_found", 404),
            (
                Error::ReferralRelationNotFound("x".into()),
                "referral_relation_not_found",
                404,
            ),
            (
                Error::CampaignNotFound("x".into()),
                "campaign_not_found",
                404,
            ),
            (Error::UserNotFound("x".into()), "user_not_found", 404),
            (Error::MethodNotAllowed, "method_not_allowed", 405),
            (Error::Conflict("x".into()), "conflict", 409),
            (Error::AlreadyReferred("x".into()), "already_referred", 409),
            (
                Error::ReferralRelationAlreadyRedeemed("x".into()),
                "referral_relation_already_redeemed",
                409,
            ),
            (
                Error::IdempotencyKeyReused("x".into()),
                "idempotency_key_reused",
                409,
            ),
            (Error::PayloadTooLarge(10), "payload_too_large", 413),
            (
                Error::MaxReferralsReached("x".into()),
                "max_referrals_reached",
                422,
            ),
            (Error::ProgramInactive("x".into()), "program_inactive", 422),
            (Error::ProgramExpired("x".into()), "program_expired", 422),
            (Error::CodeInactive("x".into()), "code_inactive", 422),
            (Error::SelfReferral("x".into()), "self_referral", 422),
            (
                Error::BelowMinWithdrawalBalance("x".into()),
                "below_min_withdrawal_balance",
                422,
            ),
            (
                Error::PayoutMethodMissing("x".into()),
                "payout_method_missing",
                422,
            ),
            (
                Error::PromoterSuspended("x".into()),
                "promoter_suspended",
                422,
            ),
            (Error::unavailable("x"), "unavailable", 503),
            (Error::internal("boom"), "internal_error", 500),
        ];
        let mut seen = Vec::new();
        for (error, code, status) in cases {
            assert_eq!(error.code(), code);
            assert_eq!(error.status(), status, "{code}");
            seen.push(code);
        }
        assert_eq!(
            seen,
            Error::CODES,
            "every variant is listed, once, in CODES"
        );
    }

    #[test]
    fn invalid_request_envelope_names_the_field() {
        let error = Error::invalid("rewards[0].amount", "must be positive");
        let json = serde_json::to_value(error.envelope()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {
                "code": "invalid_request",
                "message": "must be positive",
                "field": "rewards[0].amount"
            }})
        );
    }

    #[test]
    fn internal_details_are_not_leaked() {
        let error = Error::internal("dynamodb: connection refused to 10.0.0.1");
        let json = serde_json::to_value(error.envelope()).unwrap();
        let text = json.to_string();
        assert!(!text.contains("10.0.0.1"), "{text}");
        assert_eq!(json["error"]["code"], "internal_error");
        assert!(json["error"].get("field").is_none());
    }
}
