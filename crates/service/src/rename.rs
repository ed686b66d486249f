//! Declared renames: a field has a public name and, at the same place, a wire
//! name (params sent to the worker, results read from it) or legacy names
//! (what callers of the original camelCase API sent).
//!
//! Only declared fields are renamed, at declared places: a path of public
//! names from the root, where `*` stands for every item of an array. Nothing
//! else is touched, so user payloads (a JSON Schema inside `create_tool`
//! params, a metadata object) reach the worker byte for byte as sent. The
//! original renamed every key it could reach, mangling such payloads.

use serde_json::{Map, Value};

use crate::Violation;
use crate::violation::push_pointer;

/// A set of declared renames, as a tree of public path segments.
#[derive(Debug, Clone, Default)]
pub(crate) struct RenameTree {
    root: Node,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Child nodes by public key (or `*`), in declaration order.
    children: Vec<(Segment, Node)>,
    /// The other names of the field this node stands for; empty at the root
    /// and at nodes that exist only to reach deeper renames.
    others: Vec<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(Box<str>),
    EachItem,
}

/// A declared rename that could not be applied because both names are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// JSON pointer to the object holding both names.
    pub(crate) at: String,
    pub(crate) public: String,
    pub(crate) other: String,
}

impl Conflict {
    /// The conflict as a violation with `keyword` (`legacyName` in params,
    /// `renameConflict` in results).
    pub(crate) fn into_violation(self, keyword: &'static str) -> Violation {
        let mut pointer = self.at;
        push_pointer(&mut pointer, &self.public);
        Violation::new(
            pointer,
            keyword,
            format!(
                "`{}` and `{}` name the same field; give only one",
                self.other, self.public
            ),
        )
    }
}

impl RenameTree {
    /// Adds a rename of the field at `public_pointer` (a JSON pointer of
    /// public names, `*` for array items) to `others`.
    ///
    /// # Errors
    /// A pointer that does not start with `/`, names no field (ends in `*`),
    /// or is declared twice.
    pub(crate) fn insert(
        &mut self,
        public_pointer: &str,
        others: Vec<Box<str>>,
    ) -> Result<(), String> {
        let segments = parse_pointer(public_pointer)?;
        let Some((last, _)) = segments.split_last() else {
            return Err("the pointer must name a field, not the root".into());
        };
        if *last == Segment::EachItem {
            return Err("the pointer must end with a field name, not `*`".into());
        }
        let mut node = &mut self.root;
        for segment in segments {
            let index = match node.children.iter().position(|(s, _)| *s == segment) {
                Some(index) => index,
                None => {
                    node.children.push((segment, Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[index].1;
        }
        if !node.others.is_empty() {
            return Err("this field is renamed twice".into());
        }
        if others.is_empty() {
            return Err("at least one other name is needed".into());
        }
        node.others = others;
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.root.children.is_empty()
    }

    /// The declared public pointers, each with its public path segments
    /// (`None` for `*`), for checking them against a schema.
    pub(crate) fn paths(&self) -> Vec<Vec<Option<&str>>> {
        fn walk<'a>(
            node: &'a Node,
            prefix: &mut Vec<Option<&'a str>>,
            out: &mut Vec<Vec<Option<&'a str>>>,
        ) {
            for (segment, child) in &node.children {
                prefix.push(match segment {
                    Segment::Key(key) => Some(key),
                    Segment::EachItem => None,
                });
                if !child.others.is_empty() {
                    out.push(prefix.clone());
                }
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut Vec::new(), &mut out);
        out
    }

    /// Renames public names to the first other name (public → wire). Returns
    /// whether anything changed. The declared public field is renamed even
    /// when the other name is already present, replacing it: the caller used
    /// the public name, and the public vocabulary is the one validated.
    pub(crate) fn to_other(&self, value: &mut Value) -> bool {
        fn walk(node: &Node, value: &mut Value) -> bool {
            let mut changed = false;
            match value {
                Value::Object(map) => {
                    for (segment, child) in &node.children {
                        let Segment::Key(public) = segment else {
                            continue;
                        };
                        // Deeper renames first, while the parents still carry
                        // their public names.
                        if let Some(inner) = map.get_mut(&**public) {
                            changed |= walk(child, inner);
                        }
                        if let Some(wire) = child.others.first()
                            && let Some(inner) = map.remove(&**public)
                        {
                            map.insert(wire.to_string(), inner);
                            changed = true;
                        }
                    }
                }
                Value::Array(items) => {
                    for (segment, child) in &node.children {
                        if *segment == Segment::EachItem {
                            for item in items.iter_mut() {
                                changed |= walk(child, item);
                            }
                        }
                    }
                }
                _ => {}
            }
            changed
        }
        walk(&self.root, value)
    }

    /// Renames any other name to the public name (wire → public, legacy →
    /// public). Returns whether anything changed, or the first conflict (the
    /// public name and another name, or two other names, both present).
    pub(crate) fn to_public(&self, value: &mut Value) -> Result<bool, Conflict> {
        fn walk(node: &Node, value: &mut Value, at: &mut String) -> Result<bool, Conflict> {
            let mut changed = false;
            match value {
                Value::Object(map) => {
                    for (segment, child) in &node.children {
                        let Segment::Key(public) = segment else {
                            continue;
                        };
                        changed |= rename_here(map, public, &child.others, at)?;
                        if let Some(inner) = map.get_mut(&**public) {
                            let len = at.len();
                            push_pointer(at, public);
                            let result = walk(child, inner, at);
                            at.truncate(len);
                            changed |= result?;
                        }
                    }
                }
                Value::Array(items) => {
                    for (segment, child) in &node.children {
                        if *segment == Segment::EachItem {
                            for (index, item) in items.iter_mut().enumerate() {
                                let len = at.len();
                                push_pointer(at, &index.to_string());
                                let result = walk(child, item, at);
                                at.truncate(len);
                                changed |= result?;
                            }
                        }
                    }
                }
                _ => {}
            }
            Ok(changed)
        }
        walk(&self.root, value, &mut String::new())
    }
}

fn rename_here(
    map: &mut Map<String, Value>,
    public: &str,
    others: &[Box<str>],
    at: &str,
) -> Result<bool, Conflict> {
    let mut present = others.iter().filter(|other| map.contains_key(&***other));
    let Some(other) = present.next() else {
        return Ok(false);
    };
    let clash = if map.contains_key(public) {
        Some(public.to_owned())
    } else {
        present.next().map(|second| second.to_string())
    };
    if let Some(clash) = clash {
        return Err(Conflict {
            at: at.to_owned(),
            public: clash,
            other: other.to_string(),
        });
    }
    if let Some(inner) = map.remove(&**other) {
        map.insert(public.to_owned(), inner);
    }
    Ok(true)
}

fn parse_pointer(pointer: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "`{pointer}` is not a JSON pointer (it must start with `/`)"
        ));
    };
    rest.split('/')
        .map(|raw| {
            if raw == "*" {
                return Ok(Segment::EachItem);
            }
            let key = raw.replace("~1", "/").replace("~0", "~");
            if key.is_empty() {
                return Err(format!("`{pointer}` has an empty segment"));
            }
            Ok(Segment::Key(key.into()))
        })
        .collect()
}
