//! Message processing logs (MPLs) and the query shape the SAP-compatible API asks the store for.

use serde::Serialize;

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
