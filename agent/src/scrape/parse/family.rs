//! Metric families: which family a sample belongs to, its type, and the
//! OpenMetrics rules that depend on the family (metadata placement, name
//! clashes, per-type sample rules).
//!
//! The common case costs one prefix comparison per sample: a sample almost
//! always belongs to the family of the line before it. Only when it does not
//! do we consult the map of families seen so far (one entry per family, not
//! per sample).

use std::borrow::Cow;
use std::collections::HashMap;

use super::error::Reason;
use crate::model::MetricType;

/// Which sample of its family a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Name equals the family name (gauge, unknown, summary quantile, stateset, ...).
    Bare,
    Total,
    Created,
    Bucket,
    Count,
    Sum,
    GCount,
    GSum,
    Info,
}

/// Suffixes each type gives its samples (OpenMetrics 1.0).
const SUFFIXES: &[(MetricType, &str, Role)] = &[
    (MetricType::Counter, "_total", Role::Total),
    (MetricType::Counter, "_created", Role::Created),
    (MetricType::Histogram, "_bucket", Role::Bucket),
    (MetricType::Histogram, "_count", Role::Count),
    (MetricType::Histogram, "_sum", Role::Sum),
    (MetricType::Histogram, "_created", Role::Created),
    (MetricType::GaugeHistogram, "_bucket", Role::Bucket),
    (MetricType::GaugeHistogram, "_gcount", Role::GCount),
    (MetricType::GaugeHistogram, "_gsum", Role::GSum),
    (MetricType::Summary, "_count", Role::Count),
    (MetricType::Summary, "_sum", Role::Sum),
    (MetricType::Summary, "_created", Role::Created),
    (MetricType::Info, "_info", Role::Info),
];

/// The role of sample `name` in family `family` of type `t`, if it belongs.
fn role_in(family: &str, t: MetricType, name: &str) -> Option<Role> {
    let rest = name.strip_prefix(family)?;
    if rest.is_empty() {
        return Some(Role::Bare);
    }
    SUFFIXES
        .iter()
        .find(|(st, suffix, _)| *st == t && *suffix == rest)
        .map(|(_, _, role)| *role)
}

/// The metadata line kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Meta {
    Help,
    Type,
    Unit,
}

impl Meta {
    fn as_str(self) -> &'static str {
        match self {
            Self::Help => "HELP",
            Self::Type => "TYPE",
            Self::Unit => "UNIT",
        }
    }
}

#[derive(Debug)]
struct Family<'a> {
    name: Cow<'a, str>,
    metric_type: MetricType,
    has_help: bool,
    has_type: bool,
    unit: Option<&'a str>,
    has_samples: bool,
}

/// Families seen so far in one body.
#[derive(Debug, Default)]
pub(super) struct Families<'a> {
    list: Vec<Family<'a>>,
    index: HashMap<Cow<'a, str>, usize>,
    current: Option<usize>,
    /// Reused for clash lookups so declaring a family does not allocate.
    scratch: String,
}

impl<'a> Families<'a> {
    /// Number of distinct families (declared by metadata or sampled).
    pub(super) fn count(&self) -> usize {
        self.list.len()
    }

    fn add(&mut self, name: Cow<'a, str>, metric_type: MetricType) -> usize {
        let i = self.list.len();
        self.index.insert(name.clone(), i);
        self.list.push(Family {
            name,
            metric_type,
            has_help: false,
            has_type: false,
            unit: None,
            has_samples: false,
        });
        i
    }

    /// Records a HELP/TYPE/UNIT line. `strict` enables the OpenMetrics rules.
    pub(super) fn metadata(
        &mut self,
        meta: Meta,
        name: &'a str,
        value: MetaValue<'a>,
        strict: bool,
    ) -> Result<(), Reason> {
        let i = match self.current {
            Some(c) if self.list[c].name == name => c,
            _ => match self.index.get(name) {
                Some(_) if strict => {
                    return Err(misplaced(meta, name, "the family appeared earlier"));
                }
                Some(&i) => i,
                None => self.add(Cow::Borrowed(name), MetricType::Unknown),
            },
        };
        self.current = Some(i);
        let fam = &mut self.list[i];
        if strict {
            if fam.has_samples {
                return Err(misplaced(meta, name, "metadata must precede the samples"));
            }
            let repeated = match meta {
                Meta::Help => fam.has_help,
                Meta::Type => fam.has_type,
                Meta::Unit => fam.unit.is_some(),
            };
            if repeated {
                return Err(misplaced(meta, name, "repeated"));
            }
        }
        match value {
            MetaValue::Help => fam.has_help = true,
            MetaValue::Type(t) => {
                fam.has_type = true;
                fam.metric_type = t;
            }
            MetaValue::Unit(u) => fam.unit = Some(u),
        }
        if strict {
            self.check_declared(i)?;
        }
        Ok(())
    }

    /// OpenMetrics: unit rules and name clashes, checked whenever TYPE or UNIT changes.
    fn check_declared(&mut self, i: usize) -> Result<(), Reason> {
        let fam = &self.list[i];
        let t = fam.metric_type;
        if let Some(unit) = fam.unit.filter(|u| !u.is_empty()) {
            let rule = if matches!(t, MetricType::Info | MetricType::StateSet) {
                Some("info and stateset families cannot have a unit")
            } else if !fam
                .name
                .strip_suffix(unit)
                .is_some_and(|base| base.len() > 1 && base.ends_with('_'))
            {
                Some("the family name must end with _<unit>")
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(Reason::InvalidUnit {
                    unit: unit.to_owned(),
                    family: fam.name.to_string(),
                    rule,
                });
            }
        }
        if !fam.has_type {
            return Ok(());
        }
        // Another family named like one of this family's samples...
        for (st, suffix, _) in SUFFIXES.iter().filter(|(st, _, _)| *st == t) {
            debug_assert_eq!(*st, t);
            self.scratch.clear();
            self.scratch.push_str(&fam.name);
            self.scratch.push_str(suffix);
            if let Some(&j) = self.index.get(self.scratch.as_str()) {
                return Err(clash(fam, &self.list[j]));
            }
        }
        // ...or this family named like a sample of another family.
        for (st, suffix, _) in SUFFIXES {
            let Some(base) = fam.name.strip_suffix(suffix) else {
                continue;
            };
            if let Some(&j) = self.index.get(base) {
                let other = &self.list[j];
                if j != i && other.metric_type == *st {
                    return Err(clash(fam, other));
                }
            }
        }
        Ok(())
    }

    /// Finds the family of sample `name` (starting a new, untyped one if
    /// none matches), makes it current and returns its type and the sample's role.
    #[allow(
        clippy::ptr_arg,
        reason = "a new family stores the name as given, borrowed or owned"
    )]
    pub(super) fn sample(&mut self, name: &Cow<'a, str>) -> (MetricType, Role) {
        if let Some(c) = self.current {
            let fam = &mut self.list[c];
            if let Some(role) = role_in(&fam.name, fam.metric_type, name) {
                fam.has_samples = true;
                return (fam.metric_type, role);
            }
        }
        let (i, role) = self.lookup(name).unwrap_or_else(|| {
            let i = self.add(name.clone(), MetricType::Unknown);
            (i, Role::Bare)
        });
        self.current = Some(i);
        let fam = &mut self.list[i];
        fam.has_samples = true;
        (fam.metric_type, role)
    }

    /// Index of the family of the last sample or metadata line.
    pub(super) fn current_index(&self) -> usize {
        self.current.unwrap_or(usize::MAX)
    }

    /// Name of family `i` (empty if there is none).
    pub(super) fn name(&self, i: usize) -> &str {
        self.list.get(i).map_or("", |f| &f.name)
    }

    fn lookup(&self, name: &str) -> Option<(usize, Role)> {
        if let Some(&i) = self.index.get(name) {
            return Some((i, Role::Bare));
        }
        SUFFIXES.iter().find_map(|(t, suffix, role)| {
            let base = name.strip_suffix(suffix)?;
            let &i = self.index.get(base)?;
            (self.list[i].metric_type == *t).then_some((i, *role))
        })
    }
}

/// The payload of a metadata line, as far as family tracking cares.
#[derive(Debug, Clone, Copy)]
pub(super) enum MetaValue<'a> {
    Help,
    Type(MetricType),
    Unit(&'a str),
}

fn misplaced(meta: Meta, family: &str, rule: &'static str) -> Reason {
    Reason::MisplacedMetadata {
        what: meta.as_str(),
        family: family.to_owned(),
        rule,
    }
}

fn clash(fam: &Family<'_>, other: &Family<'_>) -> Reason {
    Reason::ClashingFamily {
        family: fam.name.to_string(),
        other: other.name.to_string(),
    }
}
