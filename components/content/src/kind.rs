//! Content types, requested lengths, and the written copy itself.

use serde::Serialize;
use serde_json::{Value, json};

/// Kind of copy to write. The name on the wire is the snake_case form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    Email,
    EmailSequence,
    LinkedinPost,
    LinkedinMessage,
    WebsiteCopy,
    SubjectLines,
}

impl ContentType {
    pub const ALL: [ContentType; 6] = [
        ContentType::Email,
        ContentType::EmailSequence,
        ContentType::LinkedinPost,
        ContentType::LinkedinMessage,
        ContentType::WebsiteCopy,
        ContentType::SubjectLines,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ContentType::Email => "email",
            ContentType::EmailSequence => "email_sequence",
            ContentType::LinkedinPost => "linkedin_post",
            ContentType::LinkedinMessage => "linkedin_message",
            ContentType::WebsiteCopy => "website_copy",
            ContentType::SubjectLines => "subject_lines",
        }
    }

    pub fn parse(text: &str) -> Option<ContentType> {
        ContentType::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
    }

    /// Comma-separated names, for error messages.
    pub fn names() -> String {
        ContentType::ALL.map(ContentType::name).join(", ")
    }

    /// Returns the call to action used when the request names none.
    pub fn default_call_to_action(self) -> &'static str {
        match self {
            ContentType::Email | ContentType::EmailSequence | ContentType::SubjectLines => {
                "Would you be open to a short call next week?"
            }
            ContentType::LinkedinPost => "Let me know in the comments how your team handles this.",
            ContentType::LinkedinMessage => "Would you be open to a quick chat?",
            ContentType::WebsiteCopy => "Book a demo with our team.",
        }
    }
}

/// Requested length of the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Short,
    Medium,
    Long,
}

impl Length {
    pub fn parse(text: &str) -> Option<Length> {
        match text {
            "short" => Some(Length::Short),
            "medium" => Some(Length::Medium),
            "long" => Some(Length::Long),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Length::Short => "short",
            Length::Medium => "medium",
            Length::Long => "long",
        }
    }
}

/// One e-mail of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Days to wait after the previous step (0 for the first).
    pub delay_days: u32,
    pub subject: String,
    pub body: String,
}

/// Written copy, shaped by its content type.
#[derive(Debug, Clone, PartialEq)]
pub enum Copy {
    Email { subject: String, body: String },
    Sequence { steps: Vec<Step> },
    Post { body: String },
    Message { body: String },
    Website { headline: String, body: String },
    SubjectLines { lines: Vec<String> },
}

impl Copy {
    /// Subject lines, headlines included, that the subject check applies to.
    pub fn subjects(&self) -> Vec<&str> {
        match self {
            Copy::Email { subject, .. } => vec![subject],
            Copy::Sequence { steps } => steps.iter().map(|s| s.subject.as_str()).collect(),
            Copy::SubjectLines { lines } => lines.iter().map(String::as_str).collect(),
            Copy::Post { .. } | Copy::Message { .. } | Copy::Website { .. } => Vec::new(),
        }
    }

    /// Bodies; a sequence has one per step, subject lines have none.
    pub fn bodies(&self) -> Vec<&str> {
        match self {
            Copy::Email { body, .. }
            | Copy::Post { body }
            | Copy::Message { body }
            | Copy::Website { body, .. } => vec![body],
            Copy::Sequence { steps } => steps.iter().map(|s| s.body.as_str()).collect(),
            Copy::SubjectLines { .. } => Vec::new(),
        }
    }

    /// Returns every piece of text, for checks that look at all of it.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts = self.subjects();
        if let Copy::Website { headline, .. } = self {
            texts.push(headline);
        }
        texts.extend(self.bodies());
        texts
    }

    pub fn to_json(&self) -> Value {
        match self {
            Copy::Email { subject, body } => json!({"subject": subject, "body": body}),
            Copy::Sequence { steps } => json!({"steps": steps}),
            Copy::Post { body } | Copy::Message { body } => json!({"body": body}),
            Copy::Website { headline, body } => json!({"headline": headline, "body": body}),
            Copy::SubjectLines { lines } => json!({"lines": lines}),
        }
    }
}
