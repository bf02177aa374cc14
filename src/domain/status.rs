//! Statuses stored as TEXT with CHECK constraints, in both databases, and read back typed: each
//! enum is a `sqlx` type on either database (a value koinonia did not write fails to decode).

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

        /// Compares with the stored spelling (templates compare with literals).
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, DB>>::decode(value)?;
                Self::parse(text).ok_or_else(|| format!("{text:?} is not a {}", stringify!($name)).into())
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

    /// A group reply's own status from its recipients': failed when every one failed, otherwise
    /// the least advanced of those not failed (`delivered` only once each of them has it). It
    /// never moves back, since each recipient's status only moves forward.
    pub fn of_group(recipients: &[Self]) -> Option<Self> {
        let live = recipients.iter().copied().filter(|s| *s != Self::Failed);
        match live.min_by_key(|s| s.rank()) {
            Some(least) => Some(least),
            None if recipients.is_empty() => None,
            None => Some(Self::Failed),
        }
    }
}

text_enum!(
    /// Where a file stands. `blocked` is how the API and pages show a `failed` file the virus
    /// scanner found malware in; the database keeps such a file as `failed` (scan_state
    /// `infected`).
    AttachmentStatus {
        Pending = "pending",
        Stored = "stored",
        Failed = "failed",
        Deleted = "deleted",
        Blocked = "blocked",
    }
);

text_enum!(
    /// The four kinds of attachment the dashboard renders differently.
    MediaKind { Image = "image", Video = "video", Audio = "audio", Document = "document" }
);

text_enum!(
    /// Where the sending of an outbound message stands (see `flows::outbound`).
    SendState { Pending = "pending", InFlight = "in_flight", Accepted = "accepted", Failed = "failed" }
);

text_enum!(
    /// Whether a stored file's previews were made (none yet: still to try).
    PreviewState { Ready = "ready", Unavailable = "unavailable", Failed = "failed" }
);

text_enum!(
    /// Where a job stands in the queue.
    JobState { Queued = "queued", Running = "running", Done = "done", Failed = "failed" }
);

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::{self, *};

    #[test]
    fn a_group_replys_status_sums_up_its_recipients() {
        assert_eq!(DeliveryStatus::of_group(&[]), None);
        assert_eq!(DeliveryStatus::of_group(&[Delivered, Queued]), Some(Queued), "not every member has it yet");
        assert_eq!(DeliveryStatus::of_group(&[Delivered, Sent]), Some(Sent));
        assert_eq!(DeliveryStatus::of_group(&[Delivered, Failed]), Some(Delivered), "a failure is that member's alone");
        assert_eq!(DeliveryStatus::of_group(&[Failed, Failed]), Some(Failed));
    }
}
