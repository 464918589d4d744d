//! `content_modifier`: sets headers and exchange properties from constants and expressions
//! (headers first, then properties, each in the order written).

use crate::expr::Template;
use crate::message::Message;
use crate::step::{Env, Step, StepError};

/// The compiled step.
#[derive(Debug)]
pub struct ContentModifier {
    headers: Vec<(String, Template)>,
    properties: Vec<(String, Template)>,
}

impl ContentModifier {
    /// A step setting these headers and properties.
    pub fn new(headers: Vec<(String, Template)>, properties: Vec<(String, Template)>) -> Self {
        Self { headers, properties }
    }
}

impl Step for ContentModifier {
    fn kind(&self) -> &'static str {
        "content_modifier"
    }

    fn needs_body(&self) -> bool {
        self.headers
            .iter()
            .chain(&self.properties)
            .any(|(_, t)| t.reads_body())
    }

    fn process(&self, msg: &mut Message, env: &Env<'_>) -> Result<(), StepError> {
        for (name, value) in &self.headers {
            let v = value.render_in(msg, Some(env.directory));
            msg.set_header(name, v);
        }
        for (name, value) in &self.properties {
            let v = value.render_in(msg, Some(env.directory));
            msg.set_property(name, v);
        }
        Ok(())
    }
}
