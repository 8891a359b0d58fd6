//! [`RouteMemo`]: the route templates of the paths a worker saw last.
//!
//! Before routing, actix-web's only way to a request's template is
//! `match_pattern()`, which matches the path against the whole resource map again
//! (a regex per dynamic resource tried, in registration order) and builds the
//! template in a new `String`: measured in `benches/`, that is most of what
//! herd-actix would add to a request. The template is a function of the path alone,
//! for a given resource map, so a worker that sees the same path again (a health
//! check, a listing, a popular id) can skip it: this memo keeps the templates of the
//! paths seen last, in a fixed number of sets of two slots chosen by a seeded hash; a
//! new path replaces the one of its set used least recently, so that two busy paths
//! that share a set do not evict each other.
//!
//! A path not in the memo costs one hash, one comparison and one copy more than asking
//! actix directly, and takes its slot. Memory is fixed up front whatever clients send
//! (256 slots of up to [`MAX_PATH`] bytes of path, about 40 KiB, plus the templates, which the
//! app bounds), so a memo allocates nothing of its own after it is built. It belongs
//! to one `MetricsMiddleware`, hence to one actix worker thread: no lock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::rc::Rc;

use actix_web::dev::{ResourceMap, ServiceRequest};

/// Sets of two slots in a memo: a power of two.
const SETS: usize = 128;

/// Longer paths are not remembered, so that a slot stays small.
const MAX_PATH: usize = 128;

/// Distinct templates a memo keeps; an app has far fewer routes. Past it, paths with
/// a new template are not remembered.
const MAX_TEMPLATES: usize = 4096;

/// One remembered path and its template.
struct Slot {
    path: [u8; MAX_PATH],
    /// The length of the path; `None` for an empty slot.
    len: Option<u8>,
    /// The index of the path's template in [`Templates`]; `None` when no resource
    /// matches the path.
    route: Option<u32>,
}

impl Slot {
    const EMPTY: Self = Self { path: [0; MAX_PATH], len: None, route: None };

    fn holds(&self, path: &str) -> bool {
        self.len.and_then(|len| self.path.get(..usize::from(len))) == Some(path.as_bytes())
    }

    /// Remembers `path`, which fits, with its template.
    fn fill(&mut self, path: &str, route: Option<u32>) {
        if let (Some(dst), Ok(len)) = (self.path.get_mut(..path.len()), u8::try_from(path.len())) {
            dst.copy_from_slice(path.as_bytes());
            self.len = Some(len);
            self.route = route;
        }
    }
}

/// Two slots, and which of them a new path takes: the one used least recently.
struct Set {
    slots: [Slot; 2],
    victim: usize,
}

impl Set {
    const EMPTY: Self = Self { slots: [Slot::EMPTY, Slot::EMPTY], victim: 0 };
}

/// Each template once: slots hold indices, so that replacing a slot frees nothing.
/// (Freeing the template `String` of a slot filled long ago, cold in the cache, cost
/// more than the rest of a new path's bookkeeping.)
#[derive(Default)]
struct Templates {
    list: Vec<Rc<str>>,
    index: HashMap<Rc<str>, u32, foldhash::fast::RandomState>,
}

impl Templates {
    /// The index of `template`, added if new; `None` when the list is full.
    fn intern(&mut self, template: &str) -> Option<u32> {
        if let Some(&i) = self.index.get(template) {
            return Some(i);
        }
        if self.list.len() >= MAX_TEMPLATES {
            return None;
        }
        let i = u32::try_from(self.list.len()).ok()?;
        let template: Rc<str> = template.into();
        self.list.push(template.clone());
        self.index.insert(template, i);
        Some(i)
    }

    fn get(&self, route: Option<u32>) -> Option<&str> {
        self.list.get(usize::try_from(route?).ok()?).map(|t| &**t)
    }
}

/// The templates of recently seen paths; see the [module documentation](self).
pub(crate) struct RouteMemo {
    hasher: foldhash::fast::RandomState,
    /// The address of the resource map the slots were matched against. One middleware
    /// serves one app, so it never changes in practice; if it did, the slots would be
    /// forgotten rather than trusted.
    resource_map: usize,
    sets: Box<[Set]>,
    templates: Templates,
}

impl RouteMemo {
    pub(crate) fn new() -> Self {
        Self {
            hasher: foldhash::fast::RandomState::default(),
            resource_map: 0,
            sets: std::iter::repeat_with(|| Set::EMPTY).take(SETS).collect(),
            templates: Templates::default(),
        }
    }

    /// Calls `f` with `req`'s route template, as `req.match_pattern()` gives it,
    /// from the memo when its path is there.
    #[inline]
    pub(crate) fn with_route<R>(&mut self, req: &ServiceRequest, f: impl FnOnce(Option<&str>) -> R) -> R {
        let resource_map = std::ptr::from_ref::<ResourceMap>(req.resource_map()) as usize;
        self.route(req.path(), resource_map, || req.match_pattern(), f)
    }

    /// Calls `f` with the template of `path` in the resource map at address
    /// `resource_map`: the one remembered, or else what `match_pattern` gives.
    #[inline]
    fn route<R>(
        &mut self,
        path: &str,
        resource_map: usize,
        match_pattern: impl FnOnce() -> Option<String>,
        f: impl FnOnce(Option<&str>) -> R,
    ) -> R {
        if path.len() > MAX_PATH {
            return f(match_pattern().as_deref());
        }
        if resource_map != self.resource_map {
            self.forget(resource_map);
        }
        let index = self.hasher.hash_one(path) as usize & (SETS - 1);
        let Self { sets, templates, .. } = self;
        let Some(set) = sets.get_mut(index) else {
            // Unreachable: the index is masked to the slice's length.
            return f(match_pattern().as_deref());
        };
        let (way, route) = match set.slots.iter().position(|slot| slot.holds(path)) {
            Some(way) => (way, set.slots.get(way).and_then(|slot| slot.route)),
            None => {
                let template = match_pattern();
                let route = match template.as_deref() {
                    None => None,
                    Some(t) => match templates.intern(t) {
                        Some(i) => Some(i),
                        None => return f(Some(t)),
                    },
                };
                let way = set.victim;
                if let Some(slot) = set.slots.get_mut(way) {
                    slot.fill(path, route);
                }
                (way, route)
            }
        };
        set.victim = 1 - way;
        f(templates.get(route))
    }

    /// Empties every slot and records `resource_map` as the one they will hold.
    #[cold]
    fn forget(&mut self, resource_map: usize) {
        for slot in self.sets.iter_mut().flat_map(|set| set.slots.iter_mut()) {
            slot.len = None;
        }
        self.templates = Templates::default();
        self.resource_map = resource_map;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const MAP: usize = 0x1000;

    fn set_of(memo: &RouteMemo, path: &str) -> usize {
        memo.hasher.hash_one(path) as usize & (SETS - 1)
    }

    /// Three paths whose hashes share a set, under this memo's seed.
    fn three_in_one_set(memo: &RouteMemo) -> Vec<String> {
        let first = set_of(memo, "/p/0");
        (0..).map(|i| format!("/p/{i}")).filter(|p| set_of(memo, p) == first).take(3).collect()
    }

    /// Looks `path` up in `map` as the middleware does, the template being the path
    /// upper-cased; returns whether the memo had to ask for it.
    fn asked(memo: &mut RouteMemo, path: &str, map: usize) -> bool {
        let asked = Cell::new(false);
        let template = || {
            asked.set(true);
            Some(path.to_uppercase())
        };
        memo.route(path, map, template, |route| assert_eq!(route, Some(&*path.to_uppercase())));
        asked.get()
    }

    #[test]
    fn a_new_path_replaces_the_one_of_its_set_used_least_recently() {
        let mut memo = RouteMemo::new();
        let paths = three_in_one_set(&memo);
        let [a, b, c] = [&paths[0], &paths[1], &paths[2]];
        assert!(asked(&mut memo, a, MAP) && asked(&mut memo, b, MAP));
        for _ in 0..3 {
            assert!(!asked(&mut memo, a, MAP) && !asked(&mut memo, b, MAP), "two paths of one set alternate");
        }
        assert!(asked(&mut memo, c, MAP), "`c` replaces `a`, used before `b`");
        assert!(!asked(&mut memo, b, MAP));
        assert!(asked(&mut memo, a, MAP), "`a` replaces `c`, used before `b`");
        assert!(!asked(&mut memo, b, MAP));
    }

    #[test]
    fn long_paths_are_always_asked_for() {
        let mut memo = RouteMemo::new();
        let long = format!("/{}", "x".repeat(MAX_PATH));
        let fits = &long[..MAX_PATH];
        assert!(asked(&mut memo, &long, MAP) && asked(&mut memo, &long, MAP));
        assert!(asked(&mut memo, fits, MAP));
        assert!(!asked(&mut memo, fits, MAP));
    }

    #[test]
    fn paths_differing_in_a_byte_or_a_length_are_different_paths() {
        let mut memo = RouteMemo::new();
        for path in ["/users/me", "/users/mf", "/users/me/", "/users/m", "/Users/me", ""] {
            assert!(asked(&mut memo, path, MAP), "{path:?}");
        }
    }

    #[test]
    fn past_its_template_limit_a_memo_answers_without_remembering() {
        let mut memo = RouteMemo::new();
        for i in 0..MAX_TEMPLATES {
            assert!(asked(&mut memo, &format!("/t/{i}"), MAP));
        }
        assert_eq!(memo.templates.list.len(), MAX_TEMPLATES);
        // A new template is answered, not kept; a known one still is.
        assert!(asked(&mut memo, "/one/more", MAP) && asked(&mut memo, "/one/more", MAP));
        assert_eq!(memo.templates.list.len(), MAX_TEMPLATES);
        let last = format!("/t/{}", MAX_TEMPLATES - 1);
        assert!(!asked(&mut memo, &last, MAP), "the last path seen of its set is still there");
    }

    #[test]
    fn another_resource_map_empties_the_memo() {
        let mut memo = RouteMemo::new();
        assert!(asked(&mut memo, "/a", MAP));
        assert!(!asked(&mut memo, "/a", MAP));
        assert!(asked(&mut memo, "/a", MAP + 8));
        assert!(!asked(&mut memo, "/a", MAP + 8));
    }
}
