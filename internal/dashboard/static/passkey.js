// Passkeys: a form with data-passkey carries the WebAuthn options the
// server began its ceremony with. Submitting the form asks the browser's
// authenticator (to create a passkey when the options name a user, else to
// sign in with one) and posts the authenticator's answer in the form's
// credential field. Without WebAuthn the form says so, and the page's
// other way on remains.
"use strict";

function setUpPasskeyForms() {
	for (const form of document.querySelectorAll("form[data-passkey]")) {
		const problem = form.querySelector("[data-passkey-error]");
		const fail = (message) => {
			if (problem) {
				problem.textContent = message;
				problem.hidden = false;
			}
		};
		if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
			form.querySelector("button").disabled = true;
			fail("This browser cannot use passkeys.");
			continue;
		}
		form.addEventListener("submit", async (event) => {
			event.preventDefault();
			const options = JSON.parse(form.dataset.passkey).publicKey;
			try {
				const credential = options.user
					? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
					: await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
				form.elements.credential.value = JSON.stringify(credential.toJSON());
				form.submit(); // submit() fires no submit event: this handler does not run again
			} catch (err) {
				fail("No passkey was used (" + err.name + "). Try again, or use the other way on this page.");
			}
		});
	}
}

document.addEventListener("DOMContentLoaded", setUpPasskeyForms);
