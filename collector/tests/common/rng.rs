//! A small seeded generator (xorshift64) for the tests' and benches' generated data: the same
//! seed gives the same events on every run and machine.

#![allow(dead_code)]

pub struct Rng(pub u64);

impl Rng {
    /// A number from 0 to `n - 1`.
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// One of `of`.
    pub fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.next(of.len() as u64) as usize]
    }
}
