//! The one "did you mean" helper used for every unknown name.

/// The candidate closest to `name`, if it is close enough to be a likely
/// typo: a case-insensitive match, or an edit distance of at most a third
/// of the name's length (at least 1, at most 3).
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = name.to_ascii_lowercase();
    let limit = (name.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = if candidate.to_ascii_lowercase() == lower {
            0
        } else {
            strsim::damerau_levenshtein(&lower, &candidate.to_ascii_lowercase())
        };
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Like [`did_you_mean`], for names with `/` segments such as time zones:
/// also tries matching the last segment alone (`Londn` → `Europe/London`).
pub fn nearest_zone(name: &str) -> Option<String> {
    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    if let Some(found) = did_you_mean(name, names) {
        return Some(found);
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let cities: Vec<(&str, &str)> =
        chrono_tz::TZ_VARIANTS.iter().map(|tz| (tz.name(), tz.name().rsplit('/').next().unwrap_or(""))).collect();
    // `London` alone: the city is right, the region is missing.
    if let Some((full, _)) = cities.iter().find(|(full, city)| *city == last && *full != name) {
        return Some(full.to_string());
    }
    did_you_mean(last, cities.iter().map(|(_, city)| *city))
        .and_then(|city| cities.iter().find(|(_, c)| *c == city).map(|(full, _)| full.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_one_letter_typo() {
        assert_eq!(did_you_mean("trade_verifed", ["trade_verified", "trade_ingested"]), Some("trade_verified".into()));
    }

    #[test]
    fn refuses_distant_names() {
        assert_eq!(did_you_mean("xyz", ["trade_verified"]), None);
    }

    #[test]
    fn prefers_case_insensitive_matches() {
        assert_eq!(did_you_mean("Emea", ["EMEA", "AMER"]), Some("EMEA".into()));
    }

    #[test]
    fn finds_zones_by_city() {
        assert_eq!(nearest_zone("Europe/Londn"), Some("Europe/London".into()));
        assert_eq!(nearest_zone("London"), Some("Europe/London".into()));
        assert_eq!(nearest_zone("America/New_Yrok"), Some("America/New_York".into()));
    }
}
