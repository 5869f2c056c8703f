//! Command-line parsing by hand, as small C tools do it: positional
//! arguments, flags, options with a value (`--ttl 60` or `--ttl=60`), `-v`
//! (repeatable: `-vv`), `-h`/`--help` and `--` anywhere.

use crate::Failure;

/// What a command accepts besides its positional arguments.
pub struct Spec {
    /// The command's name as typed after `jumpwire` (`router token`).
    pub name: &'static str,
    /// Its usage text (`--help`).
    pub usage: &'static str,
    /// Options without a value.
    pub flags: &'static [&'static str],
    /// Options that take a value.
    pub values: &'static [&'static str],
}

/// A parsed command line.
pub struct Parsed {
    pub spec: &'static Spec,
    pub positional: Vec<String>,
    /// How many `-v` were given.
    pub verbose: u8,
    flags: Vec<&'static str>,
    values: Vec<(&'static str, String)>,
}

impl Spec {
    /// A usage error of this command.
    pub fn usage_error(&'static self, msg: impl Into<String>) -> Failure {
        Failure::Usage {
            msg: msg.into(),
            command: self.name,
        }
    }

    /// Parses `args` (what follows the command's name).
    pub fn parse(&'static self, args: &[String]) -> Result<Parsed, Failure> {
        let mut p = Parsed {
            spec: self,
            positional: Vec::new(),
            verbose: 0,
            flags: Vec::new(),
            values: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--" {
                p.positional.extend(it.by_ref().cloned());
                break;
            }
            if a == "-" || !a.starts_with('-') {
                p.positional.push(a.clone());
                continue;
            }
            if a == "-h" || a == "--help" {
                return Err(Failure::Help(self.usage));
            }
            if a == "--verbose" {
                p.verbose = p.verbose.saturating_add(1);
                continue;
            }
            if a.len() > 1 && a[1..].bytes().all(|b| b == b'v') {
                p.verbose = p.verbose.saturating_add((a.len() - 1) as u8);
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v)),
                _ => (a.as_str(), None),
            };
            if let Some(f) = self.flags.iter().find(|f| **f == name) {
                if inline.is_some() {
                    return Err(self.usage_error(format!("{name} takes no value")));
                }
                p.flags.push(f);
            } else if let Some(o) = self.values.iter().find(|o| **o == name) {
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| self.usage_error(format!("{name} needs a value")))?,
                };
                if p.values.iter().any(|(n, _)| n == o) {
                    return Err(self.usage_error(format!("{name} is given twice")));
                }
                p.values.push((o, v));
            } else {
                return Err(self.usage_error(format!("unknown option {name}")));
            }
        }
        Ok(p)
    }
}

impl Parsed {
    /// The positional arguments, exactly as many as `names` (which name
    /// them in the error otherwise).
    pub fn exact<const N: usize>(&self, names: [&str; N]) -> Result<[&str; N], Failure> {
        if let Some(missing) = names.get(self.positional.len()) {
            return Err(self.spec.usage_error(format!("missing {missing}")));
        }
        if let Some(extra) = self.positional.get(N) {
            return Err(self
                .spec
                .usage_error(format!("unexpected argument '{extra}'")));
        }
        Ok(std::array::from_fn(|i| self.positional[i].as_str()))
    }

    /// Whether the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    /// The value of the option `name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` as seconds (a non-negative decimal number:
    /// `0.5`, `60`), or `default`.
    pub fn seconds(
        &self,
        name: &str,
        default: std::time::Duration,
    ) -> Result<std::time::Duration, Failure> {
        let Some(v) = self.value(name) else {
            return Ok(default);
        };
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e9)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                self.spec
                    .usage_error(format!("{name} {v}: not a number of seconds"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: Spec = Spec {
        name: "t",
        usage: "Usage: t",
        flags: &["--echo"],
        values: &["--ttl"],
    };

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn usage_msg(r: Result<Parsed, Failure>) -> String {
        match r {
            Err(Failure::Usage { msg, .. }) => msg,
            Err(_) => panic!("not a usage error"),
            Ok(p) => panic!("parsed: {:?}", p.positional),
        }
    }

    #[test]
    fn options_flags_and_positionals_mix_in_any_order() {
        let p = SPEC
            .parse(&args(&["a", "-vv", "--ttl", "5", "--echo", "b", "-v"]))
            .unwrap();
        assert_eq!(p.positional, ["a", "b"]);
        assert_eq!(p.verbose, 3);
        assert!(p.flag("--echo"));
        assert_eq!(p.value("--ttl"), Some("5"));
        let p = SPEC
            .parse(&args(&["--ttl=7", "--", "-x", "--echo"]))
            .unwrap();
        assert_eq!(p.value("--ttl"), Some("7"));
        assert_eq!(p.positional, ["-x", "--echo"]);
        assert!(!p.flag("--echo"));
    }

    #[test]
    fn mistakes_are_usage_errors_naming_the_argument() {
        assert_eq!(
            usage_msg(SPEC.parse(&args(&["--nope"]))),
            "unknown option --nope"
        );
        assert_eq!(
            usage_msg(SPEC.parse(&args(&["--ttl"]))),
            "--ttl needs a value"
        );
        assert_eq!(
            usage_msg(SPEC.parse(&args(&["--echo=1"]))),
            "--echo takes no value"
        );
        assert_eq!(
            usage_msg(SPEC.parse(&args(&["--ttl=1", "--ttl", "2"]))),
            "--ttl is given twice"
        );
        assert!(matches!(
            SPEC.parse(&args(&["x", "--help"])),
            Err(Failure::Help("Usage: t"))
        ));
        let p = SPEC.parse(&args(&["a"])).unwrap();
        assert!(
            matches!(p.exact(["A", "B"]), Err(Failure::Usage { msg, .. }) if msg == "missing B")
        );
        let p = SPEC.parse(&args(&["a", "b", "c"])).unwrap();
        assert!(
            matches!(p.exact(["A", "B"]), Err(Failure::Usage { msg, .. }) if msg == "unexpected argument 'c'")
        );
        let p = SPEC.parse(&args(&["--ttl", "x"])).unwrap();
        assert!(p.seconds("--ttl", std::time::Duration::ZERO).is_err());
        let p = SPEC.parse(&args(&["--ttl", "0.5"])).unwrap();
        assert_eq!(
            p.seconds("--ttl", std::time::Duration::ZERO).unwrap(),
            std::time::Duration::from_millis(500)
        );
    }
}
