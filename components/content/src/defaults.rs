//! Built-in templates: one per content type for the `default` industry,
//! used when a tenant has stored none. Each is written to pass the quality
//! check at medium length for an account with a few facts.

use crate::kind::ContentType;

/// The industry every content type has a template for.
pub const DEFAULT_INDUSTRY: &str = "default";

/// Returns the built-in template text for a content type.
pub fn builtin(kind: ContentType) -> &'static str {
    match kind {
        ContentType::Email => EMAIL,
        ContentType::EmailSequence => EMAIL_SEQUENCE,
        ContentType::LinkedinPost => LINKEDIN_POST,
        ContentType::LinkedinMessage => LINKEDIN_MESSAGE,
        ContentType::WebsiteCopy => WEBSITE_COPY,
        ContentType::SubjectLines => SUBJECT_LINES,
    }
}

const EMAIL: &str = "\
# Two wordings: `detailed` for medium and long copy, `direct` for short.
@variant detailed
@subject
A quick question for {{account.name}}
@body
Hi {{account.name}} team,

[[One thing stood out when I read about you: {{fact.talking_point}}. ]][[I also saw that you offer {{fact.product}}. ]]That caught my eye, because teams in that spot often find that the busy work grows faster than the team.

[[Many teams like yours deal with {{fact.pain}}. ]]We help them take that work off their plate, so people spend their time on customers instead. It is simple to set up, and it fits the tools you already use.

{{cta}}

Best,
[[{{sender.name}}]]
[[{{sender.title}}, ]][[{{sender.company}}]]

@variant direct
@subject
An idea for {{account.name}}
@body
Hi {{account.name}} team,

[[I noticed {{fact.talking_point}}. ]]Teams like yours often lose hours each week to work that could run on its own.[[ I expect {{fact.pain}} is part of that.]] We help take that work away, with no new tools to learn.

{{cta}}

Best,
[[{{sender.name}}, ]][[{{sender.company}}]]
";

const EMAIL_SEQUENCE: &str = "\
@step 0
@subject
A quick question for {{account.name}}
@body
Hi {{account.name}} team,

[[One thing stood out when I read about you: {{fact.talking_point}}. ]]Teams in that spot often find that the busy work grows faster than the team. We help them take that work off their plate, so people can focus on customers.

{{cta}}

Best,
[[{{sender.name}}]]

@step 3
@subject
Following up, {{account.name}}
@body
Hi again,

I wanted to follow up on my last note.[[ Many teams like yours deal with {{fact.pain}}.]] It tends to show up as small tasks that nobody owns. Our customers hand those tasks to us and get their week back.

{{cta}}

Best,
[[{{sender.name}}]]

@step 4
@subject
One more idea for {{account.name}}
@body
Hi {{account.name}} team,

[[Since you offer {{fact.product}}, ]]your team likely spends time on the same steps again and again. We make those steps run on their own, and the setup is quick. Nothing changes for the people who use your tools today.

{{cta}}

Best,
[[{{sender.name}}]]

@step 5
@subject
A short note for {{account.name}}
@body
Hi there,

I know your inbox is busy, so I will keep this short. We help teams like {{account.name}} cut the manual work that slows them down. If the timing is wrong, that is fine, and I will not keep writing.

{{cta}}

Best,
[[{{sender.name}}]]

@step 7
@subject
Closing the loop with {{account.name}}
@body
Hi {{account.name}} team,

This is my last note on this topic. If removing busy work is on your list this year, we would be glad to help.[[ I still think {{fact.talking_point}} makes this a good moment.]] Either way, thank you for reading.

{{cta}}

Best,
[[{{sender.name}}]]
";

const LINKEDIN_POST: &str = "\
@body
Something I keep hearing from teams like {{account.name}}: the busy work grows faster than the team.

[[Take this example: {{fact.talking_point}}. ]]When a company moves fast, small manual steps pile up. Nobody owns them, and each one only takes a few minutes. Added up, they eat whole days.

[[The same teams often tell me about {{fact.pain}}. ]]The fix is rarely a big project. It starts with a list of the steps people repeat every week, and the choice of which ones to stop doing by hand.

The teams that do this well keep the list short and review it often.

{{cta}}
";

const LINKEDIN_MESSAGE: &str = "\
@body
Hi there,

[[I saw that {{fact.talking_point}}. ]]I work with teams like {{account.name}} on the busy work that grows as a company grows.[[ Many of them deal with {{fact.pain}}.]] We help them hand that work off, so people can focus on customers.

{{cta}}

[[{{sender.name}}]]
";

const WEBSITE_COPY: &str = "\
@headline
Less busy work for teams like {{account.name}}
@body
Your team should spend its time on customers, not on the same manual steps every week.

[[We know that {{fact.talking_point}}. ]][[Many teams that offer {{fact.product}} tell us the same thing. ]]As a company grows, small tasks pile up, nobody owns them, and they slow everyone down.

[[We built our service for teams dealing with {{fact.pain}}. ]]It takes the repeated work off your plate and fits the tools you already use. Setup is quick, and your team keeps working the way it does today.

{{cta}}
";

const SUBJECT_LINES: &str = "\
@line
A quick question for {{account.name}}
@line
An idea for the {{account.name}} team
@line
About {{fact.pain}}
@line
Less busy work at {{account.name}}
@line
{{account.name}} and the work nobody owns
@line
A thought on {{fact.talking_point}}
@line
For the {{account.name}} team
@line
Fewer manual steps at {{account.name}}
@line
Is busy work slowing {{account.name}} down?
@line
A short note for {{account.name}}
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::check_shape;
    use crate::template::parse;

    #[test]
    fn every_builtin_parses_and_fits_its_type() {
        for kind in ContentType::ALL {
            let template = parse(builtin(kind)).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
            check_shape(&template, kind).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        }
    }
}
