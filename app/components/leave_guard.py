"""Ask the browser to confirm before the tab is closed or reloaded while work is unsaved.

Drafts live in the Streamlit session; closing or reloading the tab ends it and loses them.
In-app navigation (Previous / Skip / Save & next) has its own warning on the annotate page;
this covers what only the browser sees. A script-only iframe sets a flag on the app's
window (st.iframe's HTML is same-origin) that one `beforeunload` listener, made in that
window, reads: the prompt shows exactly while the flag is on, in the browser's own wording.
"""

from __future__ import annotations

import streamlit as st

_SCRIPT = """<script>
(function () {
  const app = window.parent;
  app.__pneumolabUnsaved = %s;
  if (!app.__pneumolabLeaveGuard) {
    app.__pneumolabLeaveGuard = true;
    // The listener is added by a script of the app's own document: one added from here
    // would stop running when a rerun replaces this iframe.
    const script = app.document.createElement("script");
    script.textContent = 'window.addEventListener("beforeunload", function (event) {' +
      ' if (window.__pneumolabUnsaved) { event.preventDefault(); event.returnValue = ""; } });';
    app.document.head.appendChild(script);
  }
})();
</script>"""


def leave_guard(unsaved: bool) -> None:
    """Turn the browser's leave-page prompt on (`unsaved`) or off for this tab."""
    # Only a script: the iframe measures its content at zero height.
    st.iframe(_SCRIPT % ("true" if unsaved else "false"), height="content")
