// Site-level fixes to sphinx-book-theme, added by tools/book_site.py.
//
// The theme binds its sidebar buttons with document.querySelector(".primary-toggle"), which finds
// the copy in the (hidden) top bar, so the visible buttons in the article header did nothing: the
// table of contents could not be opened on a phone, nor hidden on a desktop. Forward their clicks.
document.addEventListener("DOMContentLoaded", () => {
  for (const kind of ["primary", "secondary"]) {
    const [bound, ...others] = document.querySelectorAll(`button.${kind}-toggle`);
    for (const button of others) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopImmediatePropagation();
        bound.click();
      });
    }
  }
});
