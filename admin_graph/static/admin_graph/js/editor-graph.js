// Pure graph helpers of the editor: cycle detection and the layered layout.
// Nodes are {id, after: [ids]}; an edge u -> v means v runs after u.

export function downstreamMap(nodes) {
  const down = new Map(nodes.map((n) => [n.id, []]));
  for (const n of nodes) {
    for (const u of n.after) {
      if (down.has(u)) down.get(u).push(n.id);
    }
  }
  return down;
}

// Return the ids on a path from `from` to `to` following edges, or null.
export function findPath(nodes, from, to) {
  const down = downstreamMap(nodes);
  const previous = new Map([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const current = queue.shift();
    if (current === to) {
      const path = [];
      for (let id = to; id !== null; id = previous.get(id)) path.unshift(id);
      return path;
    }
    for (const next of down.get(current) || []) {
      if (!previous.has(next)) {
        previous.set(next, current);
        queue.push(next);
      }
    }
  }
  return null;
}

// Adding the edge up -> down closes a cycle when down already reaches up.
// Return the cycle's ids in order (starting at `up`), or null when it is safe.
export function cycleIfConnected(nodes, up, down) {
  if (up === down) return [up];
  const path = findPath(nodes, down, up);
  if (!path) return null;
  return [up, ...path.slice(0, -1)];
}

// Layer of each node: the length of the longest path from a source to it.
export function longestPathLayers(nodes) {
  const ids = new Set(nodes.map((n) => n.id));
  const indegree = new Map(nodes.map((n) => [n.id, n.after.filter((u) => ids.has(u)).length]));
  const down = downstreamMap(nodes);
  const layer = new Map();
  const queue = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  for (const id of queue) layer.set(id, 0);
  while (queue.length) {
    const id = queue.shift();
    for (const next of down.get(id)) {
      layer.set(next, Math.max(layer.get(next) ?? 0, layer.get(id) + 1));
      indegree.set(next, indegree.get(next) - 1);
      if (indegree.get(next) === 0) queue.push(next);
    }
  }
  const deepest = Math.max(-1, ...layer.values());
  for (const n of nodes) {
    if (!layer.has(n.id)) layer.set(n.id, deepest + 1); // only on a cycle
  }
  return layer;
}

// Return {id: {x, y}}: layers top to bottom, each layer centred and ordered
// by the mean position of its upstream nodes to keep crossings few.
export function autoLayout(nodes, { width = 180, height = 56, gapX = 40, gapY = 70, margin = 30 } = {}) {
  const layer = longestPathLayers(nodes);
  const rows = [];
  nodes.forEach((n) => {
    const l = layer.get(n.id);
    (rows[l] ||= []).push(n);
  });
  const slot = new Map();
  const widest = Math.max(1, ...rows.map((r) => (r ? r.length : 0)));
  const positions = {};
  rows.forEach((row, l) => {
    if (!row) return;
    if (l > 0) {
      const mean = (n) => {
        const ups = n.after.filter((u) => slot.has(u)).map((u) => slot.get(u));
        return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : Infinity;
      };
      row = row.map((n, i) => ({ n, i, m: mean(n) }))
        .sort((a, b) => a.m - b.m || a.i - b.i)
        .map((e) => e.n);
    }
    const offset = ((widest - row.length) * (width + gapX)) / 2;
    row.forEach((n, i) => {
      slot.set(n.id, i + (widest - row.length) / 2);
      positions[n.id] = {
        x: Math.round(margin + offset + i * (width + gapX)),
        y: Math.round(margin + l * (height + gapY)),
      };
    });
  });
  return positions;
}
