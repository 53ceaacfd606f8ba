//! A small dashboard model and its Grafana JSON: rows of panels, each with PromQL queries,
//! laid out on Grafana's 24-column grid. Only what our dashboards use.

use serde_json::{Value, json};

/// One dashboard.
pub struct Dashboard {
    /// Stable uid (links between dashboards and from alerts use it).
    pub uid: &'static str,
    /// Title.
    pub title: &'static str,
    /// What the dashboard answers.
    pub description: &'static str,
    /// Template variables besides the datasource, in display order.
    pub vars: &'static [Var],
    /// Rows of panels.
    pub rows: Vec<Row>,
}

/// A query template variable: `label_values(<metric>, <label>)`, multi-select with All.
pub struct Var {
    /// Variable and label name (`cluster`, `node`, `namespace`).
    pub name: &'static str,
    /// The label_values query.
    pub query: &'static str,
}

/// A titled row of panels.
pub struct Row {
    /// Row title.
    pub title: &'static str,
    /// Panels, placed left to right.
    pub panels: Vec<Panel>,
}

/// How a panel draws its queries.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Lines over time.
    TimeSeries,
    /// One big number.
    Stat,
    /// A heatmap of histogram buckets.
    Heatmap,
    /// The latest value per series, as a table.
    Table,
}

/// One panel.
pub struct Panel {
    /// Title.
    pub title: &'static str,
    /// What it shows and how to read it.
    pub description: &'static str,
    /// Visualisation.
    pub kind: Kind,
    /// Grafana unit (`short`, `s`, `bytes`, `percentunit`, `ops`…).
    pub unit: &'static str,
    /// Width in grid columns (24 = full width).
    pub width: u32,
    /// (PromQL, legend) pairs.
    pub queries: Vec<(String, &'static str)>,
}

/// Shorthand constructor.
pub fn panel(
    kind: Kind,
    title: &'static str,
    unit: &'static str,
    width: u32,
    description: &'static str,
    queries: Vec<(String, &'static str)>,
) -> Panel {
    Panel {
        title,
        description,
        kind,
        unit,
        width,
        queries,
    }
}

const DATASOURCE: &str = "${datasource}";
const PANEL_HEIGHT: u32 = 8;

impl Dashboard {
    /// The Grafana dashboard JSON (schemaVersion 39, Grafana 10/11).
    pub fn to_json(&self) -> Value {
        let mut panels = Vec::new();
        let mut id = 1;
        let mut y = 0;
        for row in &self.rows {
            panels.push(json!({
                "id": id, "type": "row", "title": row.title, "collapsed": false,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
            }));
            id += 1;
            y += 1;
            let mut x = 0;
            for p in &row.panels {
                if x + p.width > 24 {
                    x = 0;
                    y += PANEL_HEIGHT;
                }
                panels.push(p.to_json(id, x, y));
                id += 1;
                x += p.width;
            }
            y += PANEL_HEIGHT;
        }
        let mut list = vec![json!({
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
        })];
        for var in self.vars {
            list.push(json!({
                "name": var.name, "label": var.name, "type": "query",
                "datasource": {"type": "prometheus", "uid": DATASOURCE},
                "query": {"query": var.query, "refId": var.name},
                "definition": var.query,
                "refresh": 2, "multi": true, "includeAll": true, "allValue": ".*",
                "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
                "sort": 1, "hide": 0,
            }));
        }
        json!({
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["crowsnest"],
            "timezone": "browser",
            "editable": false,
            "graphTooltip": 1,
            "refresh": "30s",
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": list},
            "annotations": {"list": []},
            "links": [{
                "title": "crowsnest", "type": "dashboards", "tags": ["crowsnest"],
                "asDropdown": true, "includeVars": true, "keepTime": true,
            }],
            "panels": panels,
        })
    }
}

impl Panel {
    fn to_json(&self, id: u32, x: u32, y: u32) -> Value {
        let instant = matches!(self.kind, Kind::Table);
        let heatmap = matches!(self.kind, Kind::Heatmap);
        let targets: Vec<Value> = self
            .queries
            .iter()
            .zip('A'..='Z')
            .map(|((expr, legend), ref_id)| {
                json!({
                    "refId": ref_id.to_string(),
                    "datasource": {"type": "prometheus", "uid": DATASOURCE},
                    "expr": expr,
                    "legendFormat": if heatmap { "{{le}}" } else { legend },
                    "format": if heatmap { "heatmap" } else if instant { "table" } else { "time_series" },
                    "instant": instant,
                    "range": !instant,
                })
            })
            .collect();
        let kind = match self.kind {
            Kind::TimeSeries => "timeseries",
            Kind::Stat => "stat",
            Kind::Heatmap => "heatmap",
            Kind::Table => "table",
        };
        let mut value = json!({
            "id": id,
            "type": kind,
            "title": self.title,
            "description": self.description,
            "datasource": {"type": "prometheus", "uid": DATASOURCE},
            "gridPos": {"h": PANEL_HEIGHT, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": self.unit}, "overrides": []},
            "targets": targets,
        });
        let options = match self.kind {
            Kind::TimeSeries => {
                json!({"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi", "sort": "desc"}})
            }
            Kind::Stat => {
                json!({"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}, "colorMode": "value", "graphMode": "area"})
            }
            Kind::Heatmap => {
                json!({"calculate": false, "yAxis": {"unit": self.unit}, "cellGap": 1, "color": {"scheme": "Oranges", "mode": "scheme"}})
            }
            Kind::Table => json!({"showHeader": true, "cellHeight": "sm"}),
        };
        value["options"] = options;
        if instant {
            value["transformations"] = json!([{"id": "merge", "options": {}}]);
        }
        value
    }
}
