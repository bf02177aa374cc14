//! Carrier keywords (STOP, START, HELP) and messages that probably ask to stop without being one.

/// A keyword, recognised as the whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

impl Keyword {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptOut => "STOP",
            Self::OptIn => "START",
            Self::Help => "HELP",
        }
    }
}

const OPT_OUT: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];
const OPT_IN: &[&str] = &["START", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

/// The keyword a message is, if any: the whole text with case, spaces and trailing punctuation
/// ignored, or the carrier's own `autoresponse_type`.
pub fn classify(text: &str, autoresponse_type: Option<&str>) -> Option<Keyword> {
    let word: String = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let from_text = if OPT_OUT.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else if HELP.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    };
    from_text.or_else(|| match autoresponse_type?.trim().to_ascii_uppercase().as_str() {
        "STOP" | "OPTOUT" | "OPT_OUT" => Some(Keyword::OptOut),
        "START" | "OPTIN" | "OPT_IN" | "UNSTOP" => Some(Keyword::OptIn),
        "HELP" => Some(Keyword::Help),
        _ => None,
    })
}

const LIKELY_PHRASES: &[&str] = &[
    "stop texting",
    "stop messaging",
    "stop sending",
    "stop contacting",
    "quit texting",
    "don't text",
    "dont text",
    "do not text",
    "don't message",
    "do not message",
    "do not contact",
    "don't contact",
    "unsubscribe",
    "remove me",
    "take me off",
    "opt me out",
    "opt out",
    "no more texts",
    "no more messages",
    "leave me alone",
    "wrong number",
];

/// A message that is not a keyword but probably asks to stop ("please stop texting me").
pub fn likely_opt_out(text: &str) -> bool {
    let lower = text.to_lowercase().replace('’', "'");
    let squashed = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    LIKELY_PHRASES.iter().any(|p| squashed.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_as_whole_message() {
        for t in [
            "STOP",
            "stop",
            " Stop. ",
            "stop!!",
            "Stop All",
            "opt out",
            "UNSUBSCRIBE",
            "quit",
            "end",
            "Revoke",
            "cancel",
        ] {
            assert_eq!(classify(t, None), Some(Keyword::OptOut), "{t}");
        }
        for t in ["start", "UNSTOP", "Start!"] {
            assert_eq!(classify(t, None), Some(Keyword::OptIn), "{t}");
        }
        assert_eq!(classify("help?", None), Some(Keyword::Help));
        assert_eq!(classify("We have to stop meeting so late", None), None);
        assert_eq!(classify("please stop texting me", None), None);
        assert_eq!(classify("Arrêt", Some("STOP")), Some(Keyword::OptOut));
    }

    #[test]
    fn likely_opt_outs() {
        assert!(likely_opt_out("please stop texting me"));
        assert!(likely_opt_out("Please REMOVE me from this list"));
        assert!(likely_opt_out("don’t text me again"));
        assert!(!likely_opt_out("We have to stop meeting so late"));
        assert!(!likely_opt_out("See you Sunday!"));
    }
}
