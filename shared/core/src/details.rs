//! Details an agent collects from a customer (a name, a phone number, an order number…),
//! and what kind of value each is, judged from the name the SOP gives it.

/// What kind of value a detail holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailKind {
    PersonName,
    Phone,
    Email,
    Date,
    Time,
    /// An order, booking, account, policy or tracking number; an ID; a code.
    Reference,
    Postcode,
    Address,
    /// How many (guests, people, items).
    Count,
    Amount,
    /// Anything else: what the customer says.
    Text,
}

impl DetailKind {
    /// The kind of a detail from its name ("full name", "mobile number", "booking reference").
    pub fn of(name: &str) -> Self {
        let n = name.to_lowercase();
        let said: Vec<&str> = n.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        // Short names match whole words ("id", not "provide"); longer ones anywhere.
        let has = |words: &[&str]| words.iter().any(|w| if w.len() <= 4 { said.contains(w) } else { n.contains(w) });
        if has(&["email", "e-mail"]) {
            Self::Email
        } else if has(&["phone", "mobile", "telephone", "cell", "contact number", "callback", "call back", "whatsapp"])
        {
            Self::Phone
        } else if has(&["address", "street", "location of the property", "property location"]) {
            Self::Address
        } else if has(&["postcode", "post code", "postal code", "zip", "eircode"]) {
            Self::Postcode
        } else if has(&["number of", "how many", "party size", "group size", "guests", "headcount", "people"]) {
            Self::Count
        } else if has(&["amount", "budget", "sum", "price", "cost", "value of"]) {
            Self::Amount
        } else if has(&["date of birth", "birthday", "dob", "date", "day", "when"]) {
            Self::Date
        } else if has(&["time", "hour", "slot"]) {
            Self::Time
        } else if has(&[
            "number",
            "reference",
            "ref",
            "id",
            "code",
            "no",
            "registration",
            "reg",
            "serial",
            "ticket",
            "licence",
            "license",
            "plate",
            "vin",
            "iban",
            "account",
            "policy",
            "claim",
            "invoice",
            "order",
            "tracking",
            "membership",
            "booking",
            "reservation",
            "confirmation",
            "case",
        ]) {
            if n.contains("name") { Self::Text } else { Self::Reference }
        } else if has(&["name", "surname", "who is calling", "caller's name"])
            && !n.contains(" of ")
            && !has(&["company", "business", "pet", "dog", "cat", "product", "item", "service", "street"])
        {
            Self::PersonName
        } else {
            Self::Text
        }
    }

    /// A plausible value, for the conversations that test an agent.
    pub fn sample(self) -> &'static str {
        match self {
            Self::PersonName => "Maria Gonzalez",
            Self::Phone => "07700 900123",
            Self::Email => "maria.gonzalez@example.com",
            Self::Date => "Tuesday 14 May",
            Self::Time => "10:30",
            Self::Reference => "AB-48213",
            Self::Postcode => "LS6 2AB",
            Self::Address => "12 Elm Street",
            Self::Count => "4",
            Self::Amount => "250 EUR",
            Self::Text => "as discussed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_names_businesses_use() {
        let cases = [
            ("full name", DetailKind::PersonName),
            ("patient name", DetailKind::PersonName),
            ("mobile number", DetailKind::Phone),
            ("email address", DetailKind::Email),
            ("preferred date", DetailKind::Date),
            ("date of birth", DetailKind::Date),
            ("appointment time", DetailKind::Time),
            ("order number", DetailKind::Reference),
            ("booking reference", DetailKind::Reference),
            ("vehicle registration", DetailKind::Reference),
            ("postcode", DetailKind::Postcode),
            ("delivery address", DetailKind::Address),
            ("number of guests", DetailKind::Count),
            ("pet's name", DetailKind::Text),
            ("company name", DetailKind::Text),
            ("reason for the visit", DetailKind::Text),
        ];
        for (name, kind) in cases {
            assert_eq!(DetailKind::of(name), kind, "{name}");
        }
    }
}
