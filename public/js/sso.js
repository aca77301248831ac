// The step before the identity provider (views/auth/sso-continue.ejs): follow its link at once. Without
// script the person clicks it; a link may leave for another origin where a form's redirect may not.
document.addEventListener('DOMContentLoaded', () => {
  const link = document.getElementById('sso-continue');
  if (link) window.location.replace(link.href);
});
