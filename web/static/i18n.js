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
  "signin.matrix.failed": "Your Matrix account could not be checked. Open the link again from your Matrix room, or sign in below.",

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
  "conferences.copy.label": "Copy link to “{title}”",
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
  "prejoin.starting": "Starting camera…",
  "prejoin.skip": "Join without camera and microphone",
  "prejoin.denied": "Your browser did not allow the camera and microphone. Allow them using the icon in the address bar, then reload the page. You can still join without them.",
  "prejoin.nodevice": "No camera or microphone was found. You can still join to listen and watch.",
  "prejoin.mediaerror": "The camera or microphone could not be started. It may be in use by another application.",
  "prejoin.insecure": "This page cannot use a camera: it must be opened over HTTPS.",
  "prejoin.notfound": "This conference does not exist on your organisation's server. Check the link.",
  "prejoin.ended": "This conference has ended.",
  "prejoin.forbidden": "You cannot join this conference: {message}",
  "prejoin.locked": "This conference is locked: no one else may join for now. Ask a moderator of the host to unlock it, then try again.",
  "prejoin.loadfailed": "The conference could not be loaded: {message}",
  "prejoin.joinfailed": "Joining failed: {message}",

  "call.title": "“{title}”",
  "call.connecting": "Connecting…",
  "call.queued": "Your request to join was sent to the host. Connecting…",
  "call.connected": "Connected.",
  "call.reconnecting": "The connection was lost. Reconnecting in {seconds} s…",
  "call.waiting": "Waiting to be admitted. A moderator of the host will let you in.",
  "call.admitted": "You have been admitted.",
  "call.stage": "Participants' video",
  "call.controls": "Call controls",
  "call.you": "{name} (you)",
  "call.tile.camera": "{name}, {org}",
  "call.tile.screen": "Screen shared by {name}, {org}",
  "call.badge.muted": "Microphone off",
  "call.badge.hand": "Hand raised",
  "call.mic": "Microphone",
  "call.mic.on": "Microphone on.",
  "call.mic.off": "Microphone off.",
  "call.mic.muted.by": "A moderator muted your microphone. Turn it back on when you need to speak.",
  "call.camera": "Camera",
  "call.camera.on": "Camera on.",
  "call.camera.off": "Camera off.",
  "call.device.failed": "Your camera or microphone could not be started. Allow it using the icon in the address bar, then try again.",
  "call.share": "Share screen",
  "call.share.stop": "Stop sharing",
  "call.share.on": "You are sharing your screen.",
  "call.share.off": "You stopped sharing your screen.",
  "call.share.by": "{name} is sharing their screen.",
  "call.share.failed": "Your screen could not be shared.",
  "call.hand": "Raise hand",
  "call.hand.raised": "{name} raised their hand.",
  "call.react.group": "Reactions",
  "call.react": "React with {reaction}",
  "call.react.by": "{name} reacted: {reaction}",
  "call.layout.speaker": "Speaker layout",
  "call.layout.speaker.on": "Speaker layout: the person speaking is shown large.",
  "call.layout.grid.on": "Grid layout: everyone is shown the same size.",
  "call.chat": "Chat",
  "call.chat.title": "Chat",
  "call.chat.label": "Message",
  "call.chat.send": "Send",
  "call.chat.new": "{name}: {text}",
  "call.chat.time": "{at}",
  "call.chat.failed": "Your message was not sent: {message}",
  "call.people": "Participants",
  "call.people.title": "Participants",
  "call.people.incall": "In the call",
  "call.joined": "{name} ({org}) joined the call.",
  "call.left": "{name} left the call.",
  "call.leave": "Leave",
  "call.signal.failed": "That could not be sent: {message}",
  "call.publish.failed": "Your camera and microphone could not be sent: {message}",
  "call.quality.unknown": "Connection: measuring…",
  "call.quality.good": "Connection: good ({loss} % lost, {rtt} ms)",
  "call.quality.fair": "Connection: fair ({loss} % lost, {rtt} ms)",
  "call.quality.poor": "Connection: poor ({loss} % lost, {rtt} ms)",
  "call.end.ended": "This conference has ended.",
  "call.end.removed": "A moderator removed you from this conference.",
  "call.end.denied": "A moderator did not admit you to this conference.",
  "call.end.notin": "You are not a participant of this conference.",
  "call.end.left": "You left the call.",
  "call.end.replaced": "You joined this conference from another window or device, which took over from this one.",
  "call.lobby.title": "Waiting to be admitted",
  "call.lobby.admit": "Admit",
  "call.lobby.admit.label": "Admit {name}",
  "call.lobby.deny": "Deny",
  "call.lobby.deny.label": "Deny {name}",
  "call.lobby.admitted": "{name} was admitted.",
  "call.lobby.denied": "{name} was sent away.",
  "call.mod.group": "Moderation",
  "call.mod.lock": "Lock the conference",
  "call.mod.unlock": "Unlock the conference",
  "call.mod.lobby.on": "Turn the lobby on",
  "call.mod.lobby.off": "Turn the lobby off",
  "call.group.devices": "Microphone and camera",
  "call.group.share": "Share and react",
  "call.group.view": "View and panels",
  "call.group.leave": "Leave",
  "call.rejoin": "Rejoin",
  "call.mod.end": "End for everyone",
  "call.mod.end.confirm": "Confirm: end the conference",
  "call.mod.done": "Done.",
  "call.mod.failed": "The moderator action was refused: {message}",
  "call.mod.mute": "Ask to mute",
  "call.mod.mute.label": "Ask to mute {name}",
  "call.mod.muted": "{name} was asked to mute.",
  "call.mod.remove": "Remove",
  "call.mod.remove.label": "Remove {name} from the conference",
  "call.mod.removed": "{name} was removed.",
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
  "signin.matrix.failed": "Votre compte Matrix n’a pas pu être vérifié. Rouvrez le lien depuis votre salon Matrix, ou connectez-vous ci-dessous.",
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
  "prejoin.starting": "Démarrage de la caméra…",
  "prejoin.skip": "Rejoindre sans caméra ni micro",
  "prejoin.denied": "Votre navigateur n’a pas autorisé la caméra et le micro. Autorisez-les avec l’icône de la barre d’adresse, puis rechargez la page. Vous pouvez aussi rejoindre sans eux.",
  "prejoin.nodevice": "Aucune caméra ni aucun micro n’a été trouvé. Vous pouvez rejoindre pour écouter et regarder.",
  "prejoin.mediaerror": "La caméra ou le micro n’a pas pu démarrer. Une autre application l’utilise peut-être.",
  "prejoin.insecure": "Cette page ne peut pas utiliser de caméra : elle doit être ouverte en HTTPS.",
  "prejoin.notfound": "Cette conférence n’existe pas sur le serveur de votre organisation. Vérifiez le lien.",
  "prejoin.ended": "Cette conférence est terminée.",
  "prejoin.forbidden": "Vous ne pouvez pas rejoindre cette conférence : {message}",
  "prejoin.locked": "Cette conférence est verrouillée : personne d’autre ne peut la rejoindre pour le moment. Demandez à un modérateur de l’organisateur de la déverrouiller, puis réessayez.",
  "prejoin.loadfailed": "La conférence n’a pas pu être chargée : {message}",
  "prejoin.joinfailed": "Impossible de rejoindre : {message}",

  "call.title": "« {title} »",
  "call.connecting": "Connexion…",
  "call.queued": "Votre demande a été envoyée à l’organisateur. Connexion…",
  "call.connected": "Connecté.",
  "call.reconnecting": "La connexion a été perdue. Nouvelle tentative dans {seconds} s…",
  "call.waiting": "En attente d’admission. Un modérateur de l’organisateur va vous faire entrer.",
  "call.admitted": "Vous avez été admis.",
  "call.stage": "Vidéo des participants",
  "call.controls": "Commandes de l’appel",
  "call.you": "{name} (vous)",
  "call.tile.camera": "{name}, {org}",
  "call.tile.screen": "Écran partagé par {name}, {org}",
  "call.badge.muted": "Micro coupé",
  "call.badge.hand": "Main levée",
  "call.mic": "Micro",
  "call.mic.on": "Micro activé.",
  "call.mic.off": "Micro coupé.",
  "call.mic.muted.by": "Un modérateur a coupé votre micro. Réactivez-le quand vous voulez parler.",
  "call.camera": "Caméra",
  "call.camera.on": "Caméra activée.",
  "call.camera.off": "Caméra coupée.",
  "call.device.failed": "Votre caméra ou votre micro n’a pas pu démarrer. Autorisez-le avec l’icône de la barre d’adresse, puis réessayez.",
  "call.share": "Partager l’écran",
  "call.share.stop": "Arrêter le partage",
  "call.share.on": "Vous partagez votre écran.",
  "call.share.off": "Vous avez arrêté de partager votre écran.",
  "call.share.by": "{name} partage son écran.",
  "call.share.failed": "Votre écran n’a pas pu être partagé.",
  "call.hand": "Lever la main",
  "call.hand.raised": "{name} a levé la main.",
  "call.react.group": "Réactions",
  "call.react": "Réagir avec {reaction}",
  "call.react.by": "{name} a réagi : {reaction}",
  "call.layout.speaker": "Vue orateur",
  "call.layout.speaker.on": "Vue orateur : la personne qui parle est affichée en grand.",
  "call.layout.grid.on": "Vue mosaïque : tout le monde est affiché à la même taille.",
  "call.chat": "Discussion",
  "call.chat.title": "Discussion",
  "call.chat.label": "Message",
  "call.chat.send": "Envoyer",
  "call.chat.new": "{name} : {text}",
  "call.chat.time": "{at}",
  "call.chat.failed": "Votre message n’a pas été envoyé : {message}",
  "call.people": "Participants",
  "call.people.title": "Participants",
  "call.people.incall": "Dans l’appel",
  "call.joined": "{name} ({org}) a rejoint l’appel.",
  "call.left": "{name} a quitté l’appel.",
  "call.leave": "Quitter",
  "call.signal.failed": "L’envoi a échoué : {message}",
  "call.publish.failed": "Votre caméra et votre micro n’ont pas pu être transmis : {message}",
  "call.quality.unknown": "Connexion : mesure en cours…",
  "call.quality.good": "Connexion : bonne ({loss} % perdus, {rtt} ms)",
  "call.quality.fair": "Connexion : moyenne ({loss} % perdus, {rtt} ms)",
  "call.quality.poor": "Connexion : mauvaise ({loss} % perdus, {rtt} ms)",
  "call.end.ended": "Cette conférence est terminée.",
  "call.end.removed": "Un modérateur vous a retiré de cette conférence.",
  "call.end.denied": "Un modérateur ne vous a pas admis dans cette conférence.",
  "call.end.notin": "Vous ne participez pas à cette conférence.",
  "call.end.left": "Vous avez quitté l’appel.",
  "call.end.replaced": "Vous avez rejoint cette conférence depuis une autre fenêtre ou un autre appareil, qui a pris le relais de celle-ci.",
  "call.lobby.title": "En attente d’admission",
  "call.lobby.admit": "Admettre",
  "call.lobby.admit.label": "Admettre {name}",
  "call.lobby.deny": "Refuser",
  "call.lobby.deny.label": "Refuser {name}",
  "call.lobby.admitted": "{name} a été admis.",
  "call.lobby.denied": "{name} a été renvoyé.",
  "call.mod.group": "Modération",
  "call.mod.lock": "Verrouiller la conférence",
  "call.mod.unlock": "Déverrouiller la conférence",
  "call.mod.lobby.on": "Activer la salle d’attente",
  "call.mod.lobby.off": "Désactiver la salle d’attente",
  "call.group.devices": "Micro et caméra",
  "call.group.share": "Partager et réagir",
  "call.group.view": "Affichage et panneaux",
  "call.group.leave": "Quitter",
  "call.rejoin": "Rejoindre à nouveau",
  "call.mod.end": "Terminer pour tous",
  "call.mod.end.confirm": "Confirmer : terminer la conférence",
  "call.mod.done": "C’est fait.",
  "call.mod.failed": "L’action de modération a été refusée : {message}",
  "call.mod.mute": "Demander de couper le micro",
  "call.mod.mute.label": "Demander de couper le micro de {name}",
  "call.mod.muted": "{name} a été invité à couper son micro.",
  "call.mod.remove": "Retirer",
  "call.mod.remove.label": "Retirer {name} de la conférence",
  "call.mod.removed": "{name} a été retiré.",
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

// t gives the text of key in the current language. A value of vars is
// shown as it is, except {number, digits} (a number with that many
// decimals) and {time} (an ISO time, as hours and minutes): these follow
// the language, "0,5" and "16:12" in French.
export function t(key, vars) {
  const text = tables[language][key] ?? en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => format(vars?.[name]));
}

function format(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object' && typeof v.number === 'number') {
    const digits = v.digits ?? 0;
    return new Intl.NumberFormat(language, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v.number);
  }
  if (typeof v === 'object' && typeof v.time === 'string') {
    const at = new Date(v.time);
    return isNaN(at) ? '' : new Intl.DateTimeFormat(language, { hour: '2-digit', minute: '2-digit' }).format(at);
  }
  return String(v);
}

// translate rewrites every element marked with data-i18n (its text) or
// data-i18n-label (its aria-label) in the current language.
export function translate(root = document) {
  document.documentElement.lang = language;
  document.title = t('app.title');
  const vars = (el) => (el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : undefined);
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n, vars(el));
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel, vars(el)));
  // Texts built from several parts (a tile's label) are rebuilt by their
  // owners.
  window.dispatchEvent(new Event('entente:language'));
}
