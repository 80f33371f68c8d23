// Platform Hub dashboard: the progressive layer. Every page works without
// it; with it, copy buttons copy.
"use strict";

// Copy buttons are hidden until this script shows them: without
// JavaScript, the value is selectable text.
document.addEventListener("DOMContentLoaded", () => {
	for (const b of document.querySelectorAll("button[data-copy]")) {
		b.hidden = false;
	}
});

document.addEventListener("click", (event) => {
	const button = event.target.closest("button[data-copy]");
	if (!button) {
		return;
	}
	const source = document.querySelector(button.dataset.copy);
	if (!source || !navigator.clipboard) {
		return;
	}
	navigator.clipboard.writeText(source.value ?? source.textContent).then(() => {
		button.textContent = "Copied";
	});
});
