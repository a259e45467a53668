// Every model's loss curve on one chart (GET /api/class/curves), log scale by default.
import { LineChart } from '../charts/linechart.js';
import { who } from './format.js';

const $ = (id) => document.getElementById(id);
const COLORS = ['#542788', '#e08214', '#1b7837', '#2166ac', '#c51b7d', '#8c510a', '#01665e', '#b2182b',
  '#4d4d4d', '#8073ac', '#fdb863', '#5aae61', '#92c5de', '#de77ae', '#bf812d', '#35978f'];

export class CurvesChart {
  constructor() {
    this.chart = new LineChart($('curves'), { series: [], height: 300, yLabel: 'loss', logY: true, maxPoints: 400, legendLive: false });
    this.data = [];
    $('curves-log').addEventListener('change', (e) => { this.chart.setLog(e.target.checked); this.chart.render(); });
    $('curves-which').addEventListener('change', () => this.show(this.data));
  }

  show(curves) {
    this.data = curves;
    const key = $('curves-which').value;
    const sorted = [...curves].sort((a, b) => who(a).localeCompare(who(b)) || String(a.id).localeCompare(String(b.id)));
    this.chart.setOverlays(sorted.map((c, i) => ({
      label: who(c), stroke: COLORS[i % COLORS.length], width: 1.5, x: c.step, y: c[key] || [],
    })));
    this.chart.render();
  }

  get seriesCount() { return this.chart.seriesCount; }
}
