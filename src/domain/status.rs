//! Statuses stored as TEXT with CHECK constraints, in both databases.

use serde::{Deserialize, Serialize};

// `$text:tt` rather than `literal`: a `tt` reaches the derive macros as it is, so utoipa reads the
// serde rename (the API's spelling) too.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:tt),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),* }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(
    /// Who sent a message.
    Direction { Inbound = "inbound", Outbound = "outbound" }
);

text_enum!(
    /// Where an outbound message stands. Moves forward only (see [`DeliveryStatus::rank`]).
    DeliveryStatus {
        Queued = "queued",
        LinkSent = "link_sent",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Failed = "failed",
    }
);

impl DeliveryStatus {
    /// Order of progress: a status update never moves a message to a lower rank.
    pub const fn rank(self) -> u8 {
        match self {
            Self::Queued | Self::LinkSent => 0,
            Self::Sending => 1,
            Self::Sent => 2,
            Self::Delivered | Self::Failed => 3,
        }
    }
}

text_enum!(
    /// Where a file stands.
    AttachmentStatus { Pending = "pending", Stored = "stored", Failed = "failed", Deleted = "deleted" }
);
