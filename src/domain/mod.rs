//! Plain types of the domain: ids, phone numbers, statuses. Parsed at the edge, trusted inside.

mod ids;
mod phone;
mod status;

pub use ids::*;
pub use phone::{mask_last4, Phone, PhoneError};
pub use status::*;

pub use crate::media::mime::MediaKind;
