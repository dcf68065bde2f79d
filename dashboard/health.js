// Shows GET /health: the platform's components and their state.
(async function showHealth() {
  const status = document.getElementById("health-status");
  const list = document.getElementById("health-components");
  try {
    const response = await fetch("/health", { headers: { accept: "application/json" } });
    const report = await response.json();
    status.textContent = `Platform is ${report.status}.`;
    status.className = report.status;
    list.replaceChildren(...Object.entries(report.components).map(([name, c]) => {
      const item = document.createElement("li");
      item.textContent = `${name} (${c.backend}): ${c.status}${c.detail ? ` — ${c.detail}` : ""}`;
      item.className = c.status;
      return item;
    }));
  } catch (error) {
    status.textContent = "The platform did not answer. Is `oratio up` running?";
    status.className = "down";
  }
})();
