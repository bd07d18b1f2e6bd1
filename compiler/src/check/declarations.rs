//! The small declarations workflows refer to: channels (kind and targets;
//! a secret is kept by name, never by value) and maintenance windows
//! (weekly or fixed, with the workflows they silence).

use mon_grammar::ast::{self, Ident};

use super::Checker;
use crate::ir;

impl<'a> Checker<'a> {
    pub(super) fn channel(&mut self, file: usize, decl: &ast::ChannelDecl, id: u32) -> ir::Channel {
        let kind =
            self.choice(file, &decl.kind, "channel kind", ir::ChannelKind::ALL).unwrap_or(ir::ChannelKind::Webhook);
        let targets = decl
            .targets
            .iter()
            .map(|t| match t {
                ast::ChannelTarget::Literal(s) => ir::ChannelTarget::Literal(s.value.clone()),
                ast::ChannelTarget::Secret(s) => ir::ChannelTarget::Secret(s.value.clone()),
            })
            .collect();
        ir::Channel { id, name: decl.name.name.clone(), kind, targets }
    }

    pub(super) fn maintenance(&mut self, file: usize, decl: &ast::MaintenanceDecl) -> Option<ir::Maintenance> {
        let workflows: Vec<u32> = decl.workflows.iter().filter_map(|w| self.workflow_id(file, w)).collect();
        let window = match &decl.window {
            ast::MaintenanceWindow::Weekly { from_day, from, to_day, to, zone } => {
                let day = |this: &mut Self, d: &Option<Ident>| -> Option<u8> {
                    let d = d.as_ref()?;
                    let set = this.day_set(file, d);
                    (set.count_ones() == 1).then(|| set.trailing_zeros() as u8)
                };
                let from_day = day(self, from_day);
                let to_day = day(self, to_day);
                let zone = match zone {
                    Some(z) => self.zone(file, z)?,
                    None => "UTC".to_string(),
                };
                ir::MaintenanceWindow::Weekly {
                    from_day,
                    from_seconds: from.seconds_from_midnight(),
                    to_day,
                    to_seconds: to.seconds_from_midnight(),
                    zone,
                }
            }
            ast::MaintenanceWindow::Fixed { from, to } => {
                let from_ms = self.timestamp(file, from)?;
                let to_ms = self.timestamp(file, to)?;
                ir::MaintenanceWindow::Fixed { from_ms, to_ms }
            }
        };
        Some(ir::Maintenance { name: decl.name.name.clone(), window, workflows })
    }
}
