// Ringing for an offer: beeps through WebAudio and the phone's vibration
// motor. Browsers allow sound only after the user has touched the page,
// so the app shows a "tap to enable sound" control until the first tap;
// any tap on the page unlocks it too.
let ctx = null;
let ringing = null;
const listeners = [];

export function soundSupported() {
  return typeof (window.AudioContext ?? window.webkitAudioContext) === 'function';
}

export function soundReady() {
  return ctx?.state === 'running';
}

export function onSoundChange(f) {
  listeners.push(f);
}

/** Call from a user gesture (click, key): creates and resumes the audio context. */
export async function unlockSound() {
  if (!soundSupported()) return false;
  try {
    if (!ctx) ctx = new (window.AudioContext ?? window.webkitAudioContext)();
    if (ctx.state !== 'running') await ctx.resume();
  } catch {
    return false;
  }
  for (const f of listeners) f(soundReady());
  return soundReady();
}

function beep(at, freq, length) {
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = 'square';
  osc.frequency.value = freq;
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.35, at + 0.02);
  gain.gain.setValueAtTime(0.35, at + length - 0.03);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(ctx.destination);
  osc.start(at);
  osc.stop(at + length + 0.01);
}

function ringOnce() {
  if (soundReady()) {
    const now = ctx.currentTime;
    beep(now, 880, 0.18);
    beep(now + 0.25, 880, 0.18);
    beep(now + 0.5, 1175, 0.3);
  }
  // Vibration needs a past tap too; without one Chrome logs an intervention.
  if (navigator.vibrate && navigator.userActivation?.hasBeenActive !== false) {
    try { navigator.vibrate([300, 150, 300, 150, 500]); } catch { /* not allowed */ }
  }
}

/** Rings every 3 s until `stopRinging` (the steward answered or it went away). */
export function startRinging() {
  if (ringing) return;
  ringOnce();
  ringing = setInterval(ringOnce, 3000);
}

export function stopRinging() {
  clearInterval(ringing);
  ringing = null;
  if (navigator.vibrate && navigator.userActivation?.hasBeenActive) {
    try { navigator.vibrate(0); } catch { /* ignore */ }
  }
}

/** A short confirmation beep after enabling sound, so the steward hears it works. */
export function testBeep() {
  if (soundReady()) beep(ctx.currentTime, 880, 0.12);
}
