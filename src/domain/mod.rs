//! Plain types of the domain: ids, phone numbers, statuses. Parsed at the edge, trusted inside.

mod actor;
mod ids;
mod person;
mod phone;
mod status;
mod time_zone;

pub use actor::{Actor, ClientAddr, Role};
pub use ids::*;
pub use person::{full_name, name_or_masked};
pub use phone::{mask_last4, warm_up as warm_up_phone_numbers, Phone, PhoneError};
pub(crate) use status::text_enum;
pub use status::*;
pub use time_zone::ChurchTimeZone;
