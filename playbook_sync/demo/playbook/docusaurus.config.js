// Minimal Docusaurus config for the playbook-sync demo playbook.
// @ts-check

/** @type {import('@docusaurus/types').Config} */
const config = {
  title: 'Agency Sales Playbook',
  tagline: 'SOPs that grow with every call',
  url: 'https://playbooks.example.com',
  baseUrl: '/',
  onBrokenLinks: 'warn',
  presets: [
    [
      'classic',
      /** @type {import('@docusaurus/preset-classic').Options} */
      ({
        docs: {
          sidebarPath: require.resolve('./sidebars.js'),
          routeBasePath: '/',
        },
        blog: false,
      }),
    ],
  ],
};

module.exports = config;
