//! Message processing logs (MPLs) and the query shape the SAP-compatible API asks the store for.

use serde::{Deserialize, Serialize};

/// Outcome of a processed message, with SAP's status names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MplStatus {
    /// Delivered / answered successfully.
    #[serde(rename = "COMPLETED")]
    Completed,
    /// Processing ended in an error.
    #[serde(rename = "FAILED")]
    Failed,
    /// Accepted into a durable queue; delivery not yet attempted.
    #[serde(rename = "PROCESSING")]
    Processing,
    /// Delivery failed and will be retried.
    #[serde(rename = "RETRY")]
    Retry,
    /// The receiver refused the message for good (a 4xx); in the dead letter.
    #[serde(rename = "ESCALATED")]
    Escalated,
    /// Discarded by an operator.
    #[serde(rename = "DISCARDED")]
    Discarded,
}

impl MplStatus {
    /// Every status, in the order the console lists them.
    pub const ALL: [MplStatus; 6] = [
        MplStatus::Completed,
        MplStatus::Failed,
        MplStatus::Processing,
        MplStatus::Retry,
        MplStatus::Escalated,
        MplStatus::Discarded,
    ];

    /// SAP's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MplStatus::Completed => "COMPLETED",
            MplStatus::Failed => "FAILED",
            MplStatus::Processing => "PROCESSING",
            MplStatus::Retry => "RETRY",
            MplStatus::Escalated => "ESCALATED",
            MplStatus::Discarded => "DISCARDED",
        }
    }

    /// Parses SAP's wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// One message processing log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mpl {
    /// The message GUID (also the `SAP_MessageProcessingLogID` response header).
    pub guid: String,
    /// The flow that processed the message.
    pub flow_id: String,
    /// Outcome.
    pub status: MplStatus,
    /// The authenticated user (`SapAuthenticatedUserName`).
    pub user: String,
    /// Sender (SAP_Sender), when known.
    pub sender: String,
    /// Receiver (SAP_Receiver), when known.
    pub receiver: String,
    /// Start, Unix ms.
    pub log_start: i64,
    /// End, Unix ms.
    pub log_end: i64,
    /// The HTTP status answered to the sender.
    pub http_status: u16,
    /// Error text for FAILED messages.
    pub error: Option<String>,
    /// For a refused message, which check refused it and why (the decision trace).
    pub denial: Option<Denial>,
}

/// Why a check refused a message, as data: which check, through which authenticator, what it
/// required and what the message or caller brought. Never holds a secret; the same shape is
/// stored in the MPL, shown in the console and answered by `explain`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Denial {
    /// The check: `role`, `client-certificate`, `partner`, or the kind of the step that refused.
    pub check: String,
    /// What failed, a stable code (`missing_role`, `certificate_not_allowed`,
    /// `partner_mismatch`, `unknown_alternative_partner`, `not_an_authorized_user`, ...).
    pub reason: String,
    /// How the caller authenticated (`service-key`, `user`, `bearer`, `certificate-key`,
    /// `certificate-mapping`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<String>,
    /// The roles the sender channel accepts (any one suffices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_roles: Vec<String>,
    /// The partner the caller may send as (from the authorized users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_partner: Option<String>,
    /// The partner the message names (after mapping an alternative partner id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_partner: Option<String>,
    /// The partner id as the message carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found_id: Option<String>,
    /// Where the partner id was read (`xpath /Order/SenderId`, `EDIFACT UNB`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Subject DN of the client certificate, for certificate checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Issuer DN of the client certificate, for certificate checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Denial {
    /// A denial by `check` for `reason`, the other fields empty.
    pub fn new(check: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            reason: reason.into(),
            ..Self::default()
        }
    }

    /// The stored form (JSON).
    pub fn to_json(&self) -> String {
        // Serializing plain strings and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored form; `None` for text that is not a denial (it is shown as absent
    /// rather than failing the whole MPL read).
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A field the MPL query may filter or sort on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MplField {
    /// `MessageGuid`.
    MessageGuid,
    /// `IntegrationFlowName` (also `IntegrationArtifact/Id`).
    IntegrationFlowName,
    /// `Status`.
    Status,
    /// `LogStart`.
    LogStart,
    /// `LogEnd`.
    LogEnd,
    /// `Sender`.
    Sender,
    /// `Receiver`.
    Receiver,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

/// A literal on the right side of a comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    /// A string.
    Text(String),
    /// A point in time, Unix ms.
    Time(i64),
}

/// One condition; a query's conditions are joined with `and`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The field.
    pub field: MplField,
    /// The operator.
    pub op: CmpOp,
    /// The value.
    pub value: Literal,
}

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MplQuery {
    /// Conditions joined with `and`.
    pub conditions: Vec<Condition>,
    /// Sort field and whether descending.
    pub order_by: Option<(MplField, bool)>,
    /// At most this many rows.
    pub top: u32,
    /// Skip this many rows first.
    pub skip: u32,
}
