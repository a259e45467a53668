// "Copy" button for the share link.
export function copyShareLink(button, input) {
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (e) {
      input.select(); document.execCommand('copy');
    }
    const old = button.textContent;
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = old; }, 1200);
  });
}
