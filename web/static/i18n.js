// Every text of the client, in English and French. Both tables have the
// same keys (a test of package web checks it). {name} marks a value filled in.
const en = {
  "app.title": "Entente",
  "skip": "Skip to main content",
  "language.label": "Language",
  "signout": "Sign out",
  "error.unreachable": "Your organisation's server cannot be reached. Check your connection and try again.",

  "signin.title": "Sign in",
  "signin.intro": "Sign in with the account your organisation gave you.",
  "signin.user": "User name",
  "signin.password": "Password",
  "signin.submit": "Sign in",
  "signin.missing": "Enter your user name and password.",
  "signin.failed": "The user name or password is incorrect.",
  "signin.limited": "Too many failed attempts. Wait a few minutes before trying again.",

  "home.title": "Your conferences",
  "home.whoami": "Signed in as {name} ({user}), {org}.",
  "invitations.title": "Invitations from other organisations",
  "invitations.empty": "No invitations waiting.",
  "invitations.from": "From {org}, invited by {user}",
  "invitations.accept": "Accept",
  "invitations.accept.label": "Accept the invitation to “{title}”",
  "invitations.decline": "Decline",
  "invitations.decline.label": "Decline the invitation to “{title}”",
  "invitations.accepted.applied": "You accepted “{title}”. The host has recorded it.",
  "invitations.accepted.queued": "You accepted “{title}”. The host has not answered yet: your answer will reach it as soon as it can be reached.",
  "invitations.declined.applied": "You declined “{title}”. The host has recorded it.",
  "invitations.declined.queued": "You declined “{title}”. The host has not answered yet: your answer will reach it as soon as it can be reached.",
  "invitations.failed": "Your answer to “{title}” was refused: {message}",

  "conferences.title": "Current and upcoming conferences",
  "conferences.empty": "No conferences yet.",
  "conferences.host": "Hosted by {org}",
  "conferences.open": "Open",
  "conferences.open.label": "Open “{title}”",
  "conferences.copy": "Copy link",
  "conferences.copy.label": "Copy the link to “{title}”",
  "conferences.invite": "Invite organisations",
  "conferences.invite.label": "Invite organisations to “{title}”",
  "state.open": "Open",
  "state.locked": "Locked",
  "state.ended": "Ended",
  "copy.done": "Link to “{title}” copied.",
  "copy.failed": "The link could not be copied. Here it is: {url}",

  "create.title": "Create a conference",
  "create.label": "Title",
  "create.submit": "Create",
  "create.missing": "Enter a title for the conference.",
  "create.done": "Conference “{title}” created. You can now invite organisations.",

  "invite.title": "Invite organisations to “{title}”",
  "invite.institutions": "Institutions",
  "invite.users": "User names (optional)",
  "invite.users.hint": "Separate names with commas. Leave empty to invite everyone at the chosen institutions.",
  "invite.submit": "Send invitations",
  "invite.close": "Done",
  "invite.none": "Choose at least one institution.",
  "invite.nopeers": "Your organisation trusts no other institution yet. Ask your administrator to add one.",
  "invite.sent": "Invitation sent to {org}.",
  "invite.failed": "The invitation to {org} failed: {message}",

  "prejoin.title": "Get ready to join",
  "prejoin.title.conference": "Join “{title}”",
  "prejoin.hostedby": "Hosted by {org}",
  "prejoin.preview.title": "Your camera",
  "prejoin.preview": "Preview of your camera",
  "prejoin.settings": "Settings",
  "prejoin.name": "Your name as others see it",
  "prejoin.name.hint": "Your organisation is shown next to it; you cannot change that.",
  "prejoin.camera.select": "Camera",
  "prejoin.mic.select": "Microphone",
  "prejoin.camera.n": "Camera {n}",
  "prejoin.mic.n": "Microphone {n}",
  "prejoin.level": "Microphone level",
  "prejoin.mic": "Microphone",
  "prejoin.mic.on": "Microphone on.",
  "prejoin.mic.off": "Microphone off.",
  "prejoin.camera": "Camera",
  "prejoin.camera.on": "Camera on.",
  "prejoin.camera.off": "Camera off.",
  "prejoin.join": "Join",
  "prejoin.back": "Back to your conferences",
  "prejoin.joining": "Joining…",
  "prejoin.denied": "Your browser did not allow the camera and microphone. Allow them using the icon in the address bar, then reload the page. You can still join without them.",
  "prejoin.nodevice": "No camera or microphone was found. You can still join to listen and watch.",
  "prejoin.mediaerror": "The camera or microphone could not be started. It may be in use by another application.",
  "prejoin.insecure": "This page cannot use a camera: it must be opened over HTTPS.",
  "prejoin.notfound": "This conference does not exist on your organisation's server. Check the link.",
  "prejoin.ended": "This conference has ended.",
  "prejoin.forbidden": "You cannot join this conference: {message}",
  "prejoin.loadfailed": "The conference could not be loaded: {message}",
  "prejoin.joinfailed": "Joining failed: {message}",

  "call.title": "“{title}”",
  "call.connecting": "Connecting…",
  "call.queued": "Your request to join was sent to the host. Connecting…",
};

const fr = {
  "app.title": "Entente",
  "skip": "Aller au contenu principal",
  "language.label": "Langue",
  "signout": "Se déconnecter",
  "error.unreachable": "Le serveur de votre organisation est injoignable. Vérifiez votre connexion et réessayez.",

  "signin.title": "Connexion",
  "signin.intro": "Connectez-vous avec le compte fourni par votre organisation.",
  "signin.user": "Nom d’utilisateur",
  "signin.password": "Mot de passe",
  "signin.submit": "Se connecter",
  "signin.missing": "Saisissez votre nom d’utilisateur et votre mot de passe.",
  "signin.failed": "Le nom d’utilisateur ou le mot de passe est incorrect.",
  "signin.limited": "Trop de tentatives échouées. Patientez quelques minutes avant de réessayer.",

  "home.title": "Vos conférences",
  "home.whoami": "Connecté en tant que {name} ({user}), {org}.",
  "invitations.title": "Invitations d’autres organisations",
  "invitations.empty": "Aucune invitation en attente.",
  "invitations.from": "De {org}, invitation de {user}",
  "invitations.accept": "Accepter",
  "invitations.accept.label": "Accepter l’invitation à « {title} »",
  "invitations.decline": "Refuser",
  "invitations.decline.label": "Refuser l’invitation à « {title} »",
  "invitations.accepted.applied": "Vous avez accepté « {title} ». L’organisateur l’a enregistré.",
  "invitations.accepted.queued": "Vous avez accepté « {title} ». L’organisateur n’a pas encore répondu : votre réponse lui parviendra dès qu’il sera joignable.",
  "invitations.declined.applied": "Vous avez refusé « {title} ». L’organisateur l’a enregistré.",
  "invitations.declined.queued": "Vous avez refusé « {title} ». L’organisateur n’a pas encore répondu : votre réponse lui parviendra dès qu’il sera joignable.",
  "invitations.failed": "Votre réponse à « {title} » a été refusée : {message}",

  "conferences.title": "Conférences en cours et à venir",
  "conferences.empty": "Aucune conférence pour le moment.",
  "conferences.host": "Organisée par {org}",
  "conferences.open": "Ouvrir",
  "conferences.open.label": "Ouvrir « {title} »",
  "conferences.copy": "Copier le lien",
  "conferences.copy.label": "Copier le lien vers « {title} »",
  "conferences.invite": "Inviter des organisations",
  "conferences.invite.label": "Inviter des organisations à « {title} »",
  "state.open": "Ouverte",
  "state.locked": "Verrouillée",
  "state.ended": "Terminée",
  "copy.done": "Lien vers « {title} » copié.",
  "copy.failed": "Le lien n’a pas pu être copié. Le voici : {url}",

  "create.title": "Créer une conférence",
  "create.label": "Titre",
  "create.submit": "Créer",
  "create.missing": "Saisissez un titre pour la conférence.",
  "create.done": "Conférence « {title} » créée. Vous pouvez maintenant inviter des organisations.",

  "invite.title": "Inviter des organisations à « {title} »",
  "invite.institutions": "Institutions",
  "invite.users": "Noms d’utilisateur (facultatif)",
  "invite.users.hint": "Séparez les noms par des virgules. Laissez vide pour inviter toutes les personnes des institutions choisies.",
  "invite.submit": "Envoyer les invitations",
  "invite.close": "Terminé",
  "invite.none": "Choisissez au moins une institution.",
  "invite.nopeers": "Votre organisation ne fait encore confiance à aucune autre institution. Demandez à votre administrateur d’en ajouter une.",
  "invite.sent": "Invitation envoyée à {org}.",
  "invite.failed": "L’invitation à {org} a échoué : {message}",

  "prejoin.title": "Préparez-vous à rejoindre",
  "prejoin.title.conference": "Rejoindre « {title} »",
  "prejoin.hostedby": "Organisée par {org}",
  "prejoin.preview.title": "Votre caméra",
  "prejoin.preview": "Aperçu de votre caméra",
  "prejoin.settings": "Réglages",
  "prejoin.name": "Votre nom tel que les autres le voient",
  "prejoin.name.hint": "Votre organisation est affichée à côté ; vous ne pouvez pas la modifier.",
  "prejoin.camera.select": "Caméra",
  "prejoin.mic.select": "Micro",
  "prejoin.camera.n": "Caméra {n}",
  "prejoin.mic.n": "Micro {n}",
  "prejoin.level": "Niveau du micro",
  "prejoin.mic": "Micro",
  "prejoin.mic.on": "Micro activé.",
  "prejoin.mic.off": "Micro coupé.",
  "prejoin.camera": "Caméra",
  "prejoin.camera.on": "Caméra activée.",
  "prejoin.camera.off": "Caméra coupée.",
  "prejoin.join": "Rejoindre",
  "prejoin.back": "Retour à vos conférences",
  "prejoin.joining": "Connexion à la conférence…",
  "prejoin.denied": "Votre navigateur n’a pas autorisé la caméra et le micro. Autorisez-les avec l’icône de la barre d’adresse, puis rechargez la page. Vous pouvez aussi rejoindre sans eux.",
  "prejoin.nodevice": "Aucune caméra ni aucun micro n’a été trouvé. Vous pouvez rejoindre pour écouter et regarder.",
  "prejoin.mediaerror": "La caméra ou le micro n’a pas pu démarrer. Une autre application l’utilise peut-être.",
  "prejoin.insecure": "Cette page ne peut pas utiliser de caméra : elle doit être ouverte en HTTPS.",
  "prejoin.notfound": "Cette conférence n’existe pas sur le serveur de votre organisation. Vérifiez le lien.",
  "prejoin.ended": "Cette conférence est terminée.",
  "prejoin.forbidden": "Vous ne pouvez pas rejoindre cette conférence : {message}",
  "prejoin.loadfailed": "La conférence n’a pas pu être chargée : {message}",
  "prejoin.joinfailed": "Impossible de rejoindre : {message}",

  "call.title": "« {title} »",
  "call.connecting": "Connexion…",
  "call.queued": "Votre demande a été envoyée à l’organisateur. Connexion…",
};

const tables = { en, fr };
const STORAGE_KEY = 'entente.language';
let language = 'en';

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: fall back to the browser's language
  }
}

export function initLanguage() {
  const saved = stored();
  const browser = (navigator.languages?.[0] ?? navigator.language ?? 'en').toLowerCase();
  language = tables[saved] ? saved : browser.startsWith('fr') ? 'fr' : 'en';
  translate();
}

export function getLanguage() {
  return language;
}

export function setLanguage(lang) {
  if (!tables[lang]) return;
  language = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // The choice then lasts until the page is closed.
  }
  translate();
}

export function t(key, vars) {
  const text = tables[language][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars?.[name] ?? ''));
}

// translate rewrites every element marked with data-i18n (its text) or
// data-i18n-label (its aria-label) in the current language.
export function translate(root = document) {
  document.documentElement.lang = language;
  document.title = t('app.title');
  const vars = (el) => (el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined);
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n, vars(el));
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel, vars(el)));
}
