//! The CPU governor: keeps the agent under its CPU budget by stretching the interval of its
//! full procfs scans (the part of its work that is elective), and shrinks it back when there
//! is room again. Pure: measured usage in, interval decisions out.

use std::time::Duration;

/// Seconds over budget before stretching, and well under budget before shrinking.
const OVER_BEFORE_STRETCH: u32 = 3;
const UNDER_BEFORE_SHRINK: u32 = 30;
/// The scan interval never grows beyond base × 2^MAX_STRETCH.
const MAX_STRETCH: u32 = 5;

/// Decides the scan interval from the agent's CPU use.
#[derive(Debug, Clone)]
pub struct Governor {
    budget_percent: f64,
    base: Duration,
    stretch: u32,
    over: u32,
    under: u32,
}

impl Governor {
    pub fn new(budget_percent: f64, base: Duration) -> Self {
        Self {
            budget_percent,
            base,
            stretch: 0,
            over: 0,
            under: 0,
        }
    }

    pub fn interval(&self) -> Duration {
        self.base * 2u32.pow(self.stretch)
    }

    /// Takes one second's CPU use (percent of one core); returns the new scan interval when
    /// it changes.
    pub fn observe(&mut self, cpu_percent: f64) -> Option<Duration> {
        if cpu_percent > self.budget_percent {
            self.over += 1;
            self.under = 0;
        } else if cpu_percent < self.budget_percent / 2.0 {
            self.under += 1;
            self.over = 0;
        } else {
            self.over = 0;
            self.under = 0;
        }
        if self.over >= OVER_BEFORE_STRETCH && self.stretch < MAX_STRETCH {
            self.stretch += 1;
            self.over = 0;
            return Some(self.interval());
        }
        if self.under >= UNDER_BEFORE_SHRINK && self.stretch > 0 {
            self.stretch -= 1;
            self.under = 0;
            return Some(self.interval());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_overuse_stretches_and_sustained_calm_shrinks_back() {
        let base = Duration::from_secs(5);
        let mut governor = Governor::new(5.0, base);
        assert_eq!(governor.observe(9.0), None);
        assert_eq!(governor.observe(9.0), None);
        assert_eq!(governor.observe(9.0), Some(base * 2));
        for _ in 0..100 {
            governor.observe(50.0);
        }
        assert_eq!(governor.interval(), base * 32, "bounded stretch");
        let changes: Vec<_> = (0..200).filter_map(|_| governor.observe(1.0)).collect();
        assert_eq!(changes.last(), Some(&base));
        assert_eq!(
            governor.observe(4.0),
            None,
            "between half and full budget: steady"
        );
    }
}
