//! How a member is named wherever a leader reads about them: the parts of their name a leader
//! gave, or else their masked number.

use super::mask_last4;

/// "First Last" from the parts given (trimmed; either may be missing); empty when neither is.
pub fn full_name(first: Option<&str>, last: Option<&str>) -> String {
    [first, last].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The member's name, or their number masked to its last four digits (`•••-•••-0101`).
pub fn name_or_masked(first: Option<&str>, last: Option<&str>, last4: &str) -> String {
    let name = full_name(first, last);
    if name.is_empty() {
        mask_last4(last4)
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_masked_numbers() {
        assert_eq!(full_name(Some(" Ann "), Some("Lee")), "Ann Lee");
        assert_eq!(full_name(None, Some("Lee")), "Lee");
        assert_eq!(full_name(Some("  "), None), "");
        assert_eq!(name_or_masked(None, None, "0101"), "•••-•••-0101");
        assert_eq!(name_or_masked(Some("Ann"), None, "0101"), "Ann");
    }
}
