//! Scenario descriptions: the TOML files under `config/scenarios/`, built
//! into the binary so it runs from anywhere. A scenario's name is its file
//! name; `ordinary-day.toml` explains every field.

use serde::Deserialize;
use serde_json::Value;

/// The built-in scenarios, by name.
const BUILT_IN: [(&str, &str); 5] = [
    (
        "ordinary-day",
        include_str!("../../../config/scenarios/ordinary-day.toml"),
    ),
    (
        "flu-week",
        include_str!("../../../config/scenarios/flu-week.toml"),
    ),
    (
        "earthquake",
        include_str!("../../../config/scenarios/earthquake.toml"),
    ),
    (
        "power-cut",
        include_str!("../../../config/scenarios/power-cut.toml"),
    ),
    (
        "stuck-button",
        include_str!("../../../config/scenarios/stuck-button.toml"),
    ),
];

/// The fastest a scenario may be played: a day in 24 seconds. Faster, and
/// the stewards' pauses and the flood rates stop meaning anything.
pub const MAX_SPEED: f64 = 3600.0;

/// One scenario, as its file describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// Its file name without `.toml`.
    pub name: String,
    /// One line for a person choosing a scenario.
    pub summary: String,
    /// The default seed: the same seed plays the same scenario.
    pub seed: u64,
    /// Simulated seconds per real second when the caller names none.
    pub speed: f64,
    /// What every home does all the time.
    pub life: Life,
    /// What happens, and when.
    #[serde(default, rename = "step")]
    pub steps: Vec<StepSpec>,
}

/// Rates of everyday events, per elder per simulated hour.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Life {
    pub press_per_h: f64,
    pub false_alarm_per_h: f64,
    pub bed_exit_per_h: f64,
    pub vitals_per_h: f64,
    /// Of vitals readings, the share outside the limits.
    pub vitals_out_of_range: f64,
}

impl Life {
    /// An ordinary day (as `ordinary-day.toml`; a test keeps them equal).
    pub const ORDINARY: Life = Life {
        press_per_h: 0.04,
        false_alarm_per_h: 0.03,
        bed_exit_per_h: 0.5,
        vitals_per_h: 2.0,
        vitals_out_of_range: 0.005,
    };
}

/// Something that happens `at_s` simulated seconds after the start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Elders press once each, at random moments within `within_s`:
    /// `share` of the elders with a call device, or `count` of them.
    PressWave {
        at_s: f64,
        share: Option<f64>,
        count: Option<usize>,
        within_s: f64,
    },
    /// `share` of all devices lose power; each gets it back between
    /// `for_s` and `for_s + return_within_s` later.
    PowerCut {
        at_s: f64,
        share: f64,
        for_s: f64,
        #[serde(default)]
        return_within_s: f64,
    },
    /// A call button (`device`, or one the seed picks) repeats its press
    /// `per_s` times a simulated second for `for_s`.
    StuckButton {
        at_s: f64,
        device: Option<String>,
        per_s: f64,
        for_s: f64,
    },
    /// The monthly test calls: each call device (button, pendant, pull
    /// cord) holds its button at a random moment within `within_s` and
    /// sends `test.call`; its lamp confirms the dispatcher's `test.ack`.
    /// `fail_share` of them have a broken lamp (never confirm) and
    /// `skip_share` are never tested at all.
    TestCalls {
        at_s: f64,
        within_s: f64,
        #[serde(default)]
        fail_share: f64,
        #[serde(default)]
        skip_share: f64,
    },
    /// One event from one device.
    Event {
        at_s: f64,
        device: String,
        #[serde(rename = "type")]
        event_type: String,
        #[serde(default)]
        data: Value,
    },
}

impl StepSpec {
    /// When it happens, simulated seconds after the start.
    pub fn at_s(&self) -> f64 {
        match self {
            Self::PressWave { at_s, .. }
            | Self::PowerCut { at_s, .. }
            | Self::StuckButton { at_s, .. }
            | Self::TestCalls { at_s, .. }
            | Self::Event { at_s, .. } => *at_s,
        }
    }
}

/// A scenario that cannot be used, saying why.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown scenario {name:?}; the known ones are {}", known().join(", "))]
    Unknown { name: String },
    #[error("scenario {name}: {problem}")]
    Invalid { name: String, problem: String },
}

/// The names of the built-in scenarios.
pub fn known() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(n, _)| *n).collect()
}

/// A built-in scenario by name.
pub fn built_in(name: &str) -> Result<Description, ScenarioError> {
    let (_, text) = BUILT_IN
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| ScenarioError::Unknown { name: name.into() })?;
    Description::parse(name, text)
}

/// Every built-in scenario.
pub fn all() -> Result<Vec<Description>, ScenarioError> {
    known().into_iter().map(built_in).collect()
}

impl Description {
    /// Reads and checks a description; `name` names it in errors.
    pub fn parse(name: &str, text: &str) -> Result<Self, ScenarioError> {
        let invalid = |problem: String| ScenarioError::Invalid {
            name: name.into(),
            problem,
        };
        let d: Description = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        d.check().map_err(invalid)?;
        Ok(d)
    }

    /// A built-in name, or the path of a `.toml` file written like them.
    pub fn load(name_or_path: &str) -> anyhow::Result<Self> {
        match built_in(name_or_path) {
            Err(ScenarioError::Unknown { .. }) if name_or_path.ends_with(".toml") => {
                let text = std::fs::read_to_string(name_or_path)
                    .map_err(|e| anyhow::anyhow!("scenario file {name_or_path}: {e}"))?;
                Ok(Self::parse(name_or_path, &text)?)
            }
            other => Ok(other?),
        }
    }

    fn check(&self) -> Result<(), String> {
        check_speed(self.speed).map_err(|e| format!("speed: {e}"))?;
        let l = &self.life;
        for (field, v) in [
            ("press_per_h", l.press_per_h),
            ("false_alarm_per_h", l.false_alarm_per_h),
            ("bed_exit_per_h", l.bed_exit_per_h),
            ("vitals_per_h", l.vitals_per_h),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("life.{field}: {v} is not a rate (0 or more)"));
            }
        }
        share("life.vitals_out_of_range", l.vitals_out_of_range, true)?;
        for (i, step) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("step {} ({f})", i + 1);
            let t = step.at_s();
            if !(t.is_finite() && t >= 0.0) {
                return Err(format!("{}: at_s must be 0 or more", at("at_s")));
            }
            match step {
                StepSpec::PressWave {
                    share: s,
                    count,
                    within_s,
                    ..
                } => {
                    match (s, count) {
                        (Some(s), None) => share(&at("share"), *s, false)?,
                        (None, Some(n)) if *n > 0 => {}
                        _ => {
                            return Err(format!(
                                "{}: give either share (0 to 1) or count (1 or more)",
                                at("press_wave")
                            ));
                        }
                    }
                    seconds(&at("within_s"), *within_s)?;
                }
                StepSpec::PowerCut {
                    share: s,
                    for_s,
                    return_within_s,
                    ..
                } => {
                    share(&at("share"), *s, false)?;
                    seconds(&at("for_s"), *for_s)?;
                    seconds(&at("return_within_s"), *return_within_s)?;
                }
                StepSpec::StuckButton { per_s, for_s, .. } => {
                    if !(per_s.is_finite() && *per_s > 0.0 && *per_s <= 1000.0) {
                        return Err(format!("{}: must be above 0, at most 1000", at("per_s")));
                    }
                    seconds(&at("for_s"), *for_s)?;
                }
                StepSpec::TestCalls {
                    within_s,
                    fail_share,
                    skip_share,
                    ..
                } => {
                    seconds(&at("within_s"), *within_s)?;
                    share(&at("fail_share"), *fail_share, true)?;
                    share(&at("skip_share"), *skip_share, true)?;
                }
                StepSpec::Event { event_type, .. } => {
                    if event_type.is_empty() {
                        return Err(format!("{}: is empty", at("type")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks a playing speed: above 0, at most [`MAX_SPEED`].
pub fn check_speed(speed: f64) -> Result<(), String> {
    if speed.is_finite() && speed > 0.0 && speed <= MAX_SPEED {
        Ok(())
    } else {
        Err(format!(
            "{speed} is not a speed; give simulated seconds per real second, above 0 and at most {MAX_SPEED}"
        ))
    }
}

fn share(field: &str, v: f64, zero_ok: bool) -> Result<(), String> {
    let low_ok = if zero_ok { v >= 0.0 } else { v > 0.0 };
    if v.is_finite() && low_ok && v <= 1.0 {
        Ok(())
    } else {
        Err(format!("{field}: {v} is not a share (0 to 1)"))
    }
}

fn seconds(field: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!("{field}: {v} is not a number of seconds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_reads_and_is_named_after_its_file() {
        let all = all().unwrap();
        assert_eq!(all.len(), 5);
        for d in &all {
            assert!(!d.summary.is_empty(), "{}", d.name);
        }
        assert_eq!(
            known(),
            [
                "ordinary-day",
                "flu-week",
                "earthquake",
                "power-cut",
                "stuck-button"
            ]
        );
    }

    #[test]
    fn the_ordinary_day_file_is_the_ordinary_life() {
        assert_eq!(built_in("ordinary-day").unwrap().life, Life::ORDINARY);
        let flu = built_in("flu-week").unwrap().life;
        assert!((flu.press_per_h - 3.0 * Life::ORDINARY.press_per_h).abs() < 1e-9);
    }

    #[test]
    fn the_special_scenarios_say_what_happens() {
        let quake = built_in("earthquake").unwrap();
        assert!(matches!(
            quake.steps[..],
            [StepSpec::PressWave { share: Some(s), within_s, .. }] if s >= 0.5 && within_s <= 60.0
        ));
        let cut = built_in("power-cut").unwrap();
        assert!(matches!(
            cut.steps[..],
            [StepSpec::PowerCut { share, .. }] if (0.3..0.4).contains(&share)
        ));
        let stuck = built_in("stuck-button").unwrap();
        assert!(
            matches!(stuck.steps[0], StepSpec::StuckButton { per_s, .. } if per_s * stuck.speed > 20.0)
        );
    }

    #[test]
    fn an_ordinary_day_runs_its_test_calls() {
        let day = built_in("ordinary-day").unwrap();
        assert!(matches!(
            day.steps[..],
            [StepSpec::TestCalls { fail_share, skip_share, .. }] if fail_share > 0.0 && skip_share > 0.0
        ));
    }

    #[test]
    fn unknown_names_and_bad_files_say_what_to_do() {
        let e = built_in("tsunami").unwrap_err().to_string();
        assert!(e.contains("tsunami") && e.contains("earthquake"), "{e}");
        let base = "name = \"x\"\nsummary = \"x\"\nseed = 1\nspeed = 1.0\n[life]\npress_per_h = 0.0\nfalse_alarm_per_h = 0.0\nbed_exit_per_h = 0.0\nvitals_per_h = 0.0\nvitals_out_of_range = 0.0\n";
        assert!(Description::parse("x", base).is_ok());
        for (bad, says) in [
            (
                "[[step]]\nat_s = 1\ndo = \"press_wave\"\nwithin_s = 1\n",
                "either share",
            ),
            (
                "[[step]]\nat_s = 1\ndo = \"power_cut\"\nshare = 2.0\nfor_s = 1\n",
                "share",
            ),
            ("[[step]]\nat_s = 1\ndo = \"meteor\"\n", "meteor"),
            (
                "[[step]]\nat_s = 1\ndo = \"power_cut\"\nshare = 0.5\nfor_s = 1\nfour_s = 1\n",
                "four_s",
            ),
        ] {
            let e = Description::parse("x", &format!("{base}{bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = Description::parse("x", &base.replace("speed = 1.0", "speed = 0.0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("speed"), "{e}");
    }
}
